/*
 * sensor.c: the writer of the live demo (scripts/demo).
 *
 * It plays a small weather station and uses speculo both ways at once:
 *   - segment "readings", a stream: one line per reading, every 200 ms,
 *     each expiring after 5 s (readers that fall behind lose old ones);
 *   - segment "board", changeable blocks: "status", "latest" and "config",
 *     named chunks that it keeps updating; readers always get the latest.
 *
 *   cc -std=c11 -D_GNU_SOURCE -Ilib docs/examples/sensor.c lib/libspeculo.a -pthread -o sensor
 *   ./sensor [SECONDS]        (runs for ever without SECONDS; SIGINT/SIGTERM stop it)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <speculo.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int put_text(speculo_writer *w, const char *name, int64_t ttl_ns, const char *text)
{
    struct speculo_commit_options o = {.name = name, .ttl_ns = ttl_ns};
    int rc = speculo_writer_put(w, text, strlen(text), &o, NULL);
    if (rc < 0)
        fprintf(stderr, "sensor: put %s: %s\n", name ? name : "reading", speculo_strerror(rc));
    return rc;
}

/* A temperature that drifts up and down slowly, with a little noise;
 * and a clock string for the lines. */
static double temperature(unsigned n)
{
    unsigned phase = n % 60;
    double drift = phase < 30 ? phase : 60 - phase;
    return 20.0 + drift * 0.1 + (n * 7 % 5) * 0.03;
}

static void clock_text(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, size, "%H:%M:%S", &tm);
}

static int open_writers(speculo_writer **readings, speculo_writer **board)
{
    int rc = speculo_writer_open("readings", NULL, readings);
    if (rc == 0 && (rc = speculo_writer_open("board", NULL, board)) < 0)
        speculo_writer_close(*readings);
    if (rc < 0)
        fprintf(stderr, "sensor: %s\n", speculo_strerror(rc));
    return rc;
}

/* One tick: a reading on the stream; every 5th tick (1 s), the blocks. */
static void tick(speculo_writer *readings, speculo_writer *board, unsigned n)
{
    char line[128], now[16];
    clock_text(now, sizeof now);
    snprintf(line, sizeof line, "%s reading %u: %.2f C\n", now, n, temperature(n));
    put_text(readings, NULL, 5 * 1000000000LL, line);
    put_text(board, "latest", 0, line);
    if (n % 5 == 0) {
        snprintf(line, sizeof line, "up %u s, %u readings, last at %s\n", n / 5, n + 1, now);
        put_text(board, "status", 0, line);
    }
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0;
    speculo_writer *readings, *board;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (open_writers(&readings, &board) < 0)
        return 1;
    put_text(board, "config", 0, "station: demo\nunit: C\nperiod_ms: 200\n");

    struct timespec period = {0, 200 * 1000 * 1000};
    for (unsigned n = 0; !stop && (seconds <= 0 || n < seconds * 5); n++) {
        tick(readings, board, n);
        nanosleep(&period, NULL);
    }
    put_text(board, "status", 0, "stopped\n");
    speculo_writer_close(board);
    speculo_writer_close(readings);
    return 0;
}
