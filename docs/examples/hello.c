/*
 * hello.c: the smallest speculo program, a writer and a reader in one.
 *
 *   cc -std=c11 hello.c $(pkg-config --cflags --libs speculo) -o hello
 *   ./hello
 *
 * (In the source tree: cc -std=c11 -Ilib docs/examples/hello.c
 *  lib/libspeculo.a -pthread -o hello.)
 *
 * Real programs put the writer and the readers in different processes;
 * the calls are the same.
 */
#include <stdio.h>
#include <string.h>

#include <speculo.h>

static int check(int rc, const char *what)
{
    if (rc < 0)
        fprintf(stderr, "hello: %s: %s\n", what, speculo_strerror(rc));
    return rc;
}

int main(void)
{
    speculo_writer *w;
    speculo_reader *r;
    speculo_chunk c;
    uint64_t id;

    /* The writer: creates segment "hello" when missing. */
    if (check(speculo_writer_open("hello", NULL, &w), "writer_open") < 0)
        return 1;

    /* A stream chunk that expires after 10 s... */
    struct speculo_commit_options reading = {.ttl_ns = 10 * 1000000000LL};
    check(speculo_writer_put(w, "21.5 C", 6, &reading, &id), "put");

    /* ...and a named block, updated in place: readers see the latest. */
    struct speculo_commit_options status = {.name = "status"};
    check(speculo_writer_put(w, "starting", 8, &status, NULL), "put");
    check(speculo_writer_put(w, "running", 7, &status, NULL), "put");

    /* The reader: maps the segment; chunks point into shared memory. */
    if (check(speculo_reader_open("hello", &r), "reader_open") < 0) {
        speculo_writer_close(w);
        return 1;
    }
    while (speculo_reader_next(r, &c) == 0)
        printf("chunk %llu%s%s: %.*s\n", (unsigned long long)c.id, c.name ? " " : "",
               c.name ? c.name : "", (int)c.size, (const char *)c.data);
    if (check(speculo_reader_get(r, "status", &c), "get") == 0)
        printf("status is %.*s\n", (int)c.size, (const char *)c.data);

    speculo_reader_close(r);
    speculo_writer_close(w);
    return 0;
}
