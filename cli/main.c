/*
 * speculo: write, read, follow and inspect speculo segments from a shell.
 * This file only dispatches to the subcommands.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    {"put", cmd_put, "commit stdin as a new chunk, print its id"},
    {"cat", cmd_cat, "write a chunk's bytes to stdout"},
    {"ls", cmd_ls, "list the live chunks"},
    {"tail", cmd_tail, "print the live chunks in commit order; -f follows"},
    {"info", cmd_info, "describe a segment (the .info of speculofs)"},
    {"check", cmd_check, "verify a segment file, say where it is wrong"},
    {"segments", cmd_segments, "list the segments in the segment directory"},
    {"gc", cmd_gc, "collect a segment now"},
    {"rm", cmd_rm, "remove a segment"},
    {"stats", cmd_stats, "numbers for monitoring: a table, Prometheus, or rates (-w)"},
    {"prune", cmd_prune, "remove what dead writers left (old segments, temporary files)"},
    {"bridge", cmd_bridge, "mirror a segment to other hosts through NATS JetStream"},
};

static void print_usage(FILE *out)
{
    fputs("Usage: speculo COMMAND [OPTION]... [ARG]...\n"
          "       speculo --help | --version\n"
          "\n"
          "IPC over shared memory: one writer, many readers, zero copy.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'speculo COMMAND --help' (or 'speculo help COMMAND') for a command's\n"
          "options, 'man speculo' for the whole story.\n"
          "\n"
          "Segments live in $SPECULO_DIR, else /dev/shm/speculo-$UID.\n"
          "Exit status: 0 success, 1 error (message on stderr), 2 usage error.\n",
          out);
}

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

/* Each subcommand sees argv[0] = "speculo CMD", so that getopt's messages
 * and ours name the command the user typed. */
static int run_command(const struct cli_command *c, int argc, char **argv)
{
    char prog[64];
    snprintf(prog, sizeof prog, "speculo %s", c->name);
    argv[0] = prog;
    return c->run(argc, argv);
}

int main(int argc, char **argv)
{
    /* A closed output pipe shows up as EPIPE from write(2); the commands
     * treat it as "the reader has seen enough" and end cleanly. */
    signal(SIGPIPE, SIG_IGN);
    guard_standard_fds();

    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") && argc == 3) {
        /* `speculo help CMD` is `speculo CMD --help`. */
        char *help_argv[] = {argv[2], "--help", NULL};
        const struct cli_command *c = find_command(argv[2]);
        if (c)
            return run_command(c, 2, help_argv);
        name = argv[2];
    } else if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_usage(stdout);
        return finish_stdout(EXIT_OK);
    }
    if (!strcmp(name, "--version")) {
        printf("speculo %s (segment format %d)\n", SPECULO_VERSION, SPECULO_FORMAT_VERSION);
        return finish_stdout(EXIT_OK);
    }
    const struct cli_command *c = find_command(name);
    if (c)
        return run_command(c, argc - 1, argv + 1);
    if (name[0] == '-')
        fprintf(stderr, "speculo: unrecognized option '%s'\n", printable(name));
    else
        fprintf(stderr, "speculo: unknown command '%s'\n", printable(name));
    fputs("Try 'speculo --help' for more information.\n", stderr);
    return EXIT_USAGE;
}
