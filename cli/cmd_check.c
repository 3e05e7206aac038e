/*
 * speculo check [--verbose] [--json] SEG: verify the whole segment file
 * (the library's speculo_segment_check()) and say where it goes wrong, or
 * that it is sound, with what `info` does not tell: dead and unused bytes,
 * the name index's load and its colliding names.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char check_help[] =
    "Usage: speculo check [--verbose] [--json] SEG\n"
    "\n"
    "Verify the whole file of segment SEG with the readers' and the writer's\n"
    "own checks: the header and its layout, every record, the id table, the\n"
    "name index, the header's totals. A sound file gives 'ok' and counts:\n"
    "records by state, the bytes dead records waste (a collection frees them)\n"
    "and the room unused after the last record, how full the id table and the\n"
    "name index are, and how many names are not in their home slot of the\n"
    "index (a lookup of such a name visits more slots). A file that is not\n"
    "sound gives one line, 'offset N: what is wrong', N being where in the\n"
    "file (bytes) the first problem is. A file a writer is committing to is\n"
    "checked as it is: what it has not finished yet is no problem.\n"
    "\n"
    "Exit status: 0 sound, 1 not sound (or it could not be checked), 2 usage.\n"
    "\n"
    "Options:\n"
    "  -v, --verbose  also list each name not in its home slot: its slot, its\n"
    "                 home slot and the name there\n"
    "  -j, --json     print one JSON object instead, for scripts: status (\"ok\",\n"
    "                 \"corrupt\" or \"other_version\"), offset and problem (null\n"
    "                 when ok), the counts, and the names not in their home\n"
    "                 slot as the array collisions\n"
    "  -h, --help     show this help\n";

/* The colliding names, as the library reports them (copied). */
struct collision {
    char *name, *home_name;
    uint64_t id, home, slot, home_id;
    bool same_home;
};

struct collisions {
    struct collision *v;
    size_t n, cap;
    bool failed; /* out of memory: the list is incomplete */
};

static char *dup_or_null(const char *s, bool *failed)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *failed = true;
    return d;
}

static void on_collision(const struct speculo_name_collision *c, void *arg)
{
    struct collisions *cs = arg;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? 2 * cs->cap : 16;
        struct collision *v = realloc(cs->v, cap * sizeof *v);
        if (!v) {
            cs->failed = true;
            return;
        }
        cs->v = v;
        cs->cap = cap;
    }
    struct collision *d = &cs->v[cs->n++];
    d->name = dup_or_null(c->name, &cs->failed);
    d->home_name = dup_or_null(c->home_name, &cs->failed);
    d->id = c->id;
    d->home = c->home;
    d->slot = c->slot;
    d->home_id = c->home_id;
    d->same_home = c->same_home;
}

static void collisions_free(struct collisions *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->v[i].name);
        free(cs->v[i].home_name);
    }
    free(cs->v);
}

/* Slots a lookup of a name in @slot, home @home, visits. */
static uint64_t probes(const struct speculo_check_report *rep, uint64_t home, uint64_t slot)
{
    return ((slot - home) & (rep->index_slots - 1)) + 1;
}

/* "1 slot", "2 slots" */
static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

static void print_ok(const struct speculo_check_report *rep)
{
    printf("ok: %llu records (%llu live, %llu expired, %llu obsolete>ID, %llu obsolete)",
           (unsigned long long)rep->records, (unsigned long long)rep->live_records,
           (unsigned long long)rep->expired_records, (unsigned long long)rep->replaced_records,
           (unsigned long long)rep->obsolete_records);
    if (rep->records)
        printf(", ids %llu-%llu", (unsigned long long)rep->first_id,
               (unsigned long long)rep->last_id);
    printf(", generation %llu\n", (unsigned long long)rep->generation);
    printf("bytes: %llu in the file, %llu in records (%llu live, %llu dead: the next collection "
           "frees them), %llu unused after the last record\n",
           (unsigned long long)rep->file_size, (unsigned long long)rep->bytes_used,
           (unsigned long long)rep->live_bytes, (unsigned long long)rep->dead_bytes,
           (unsigned long long)rep->free_bytes);
    printf("id table: %llu of %llu slots used\n", (unsigned long long)rep->records,
           (unsigned long long)rep->table_slots);
    printf("name index: %llu of %llu slots used (%.1f%%), %llu by names with no live version; "
           "%llu names out of their home slot, %llu sharing one; longest lookup: %llu slot%s\n",
           (unsigned long long)rep->index_used, (unsigned long long)rep->index_slots,
           rep->index_slots ? 100.0 * (double)rep->index_used / (double)rep->index_slots : 0.0,
           (unsigned long long)rep->index_dead, (unsigned long long)rep->index_displaced,
           (unsigned long long)rep->index_same_home, (unsigned long long)rep->index_longest_probe,
           plural(rep->index_longest_probe));
    if (rep->superseded)
        puts("note: the file is marked as switched or removed, yet still under the segment's "
             "name: its writer died between the two steps (the next writer repairs that)");
}

static void print_collisions(const struct speculo_check_report *rep, const struct collisions *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        const struct collision *c = &cs->v[i];
        printf("collision: '%s' (id %llu) in slot %llu, its home slot %llu holds '%s' (id %llu): "
               "a lookup visits %llu slots",
               c->name, (unsigned long long)c->id, (unsigned long long)c->slot,
               (unsigned long long)c->home, c->home_name, (unsigned long long)c->home_id,
               (unsigned long long)probes(rep, c->home, c->slot));
        puts(c->same_home ? " (same home slot)" : " (itself out of its home slot)");
    }
}

static void json_u64_key(const char *key, uint64_t v)
{
    printf(",\n  \"%s\": %llu", key, (unsigned long long)v);
}

static void print_json(const struct speculo_check_report *rep, const struct collisions *cs)
{
    const char *status = rep->status == 0         ? "ok"
                         : rep->status == -EPROTO ? "other_version"
                                                  : "corrupt";
    printf("{\n  \"status\": \"%s\",\n  \"offset\": ", status);
    if (rep->status)
        printf("%llu,\n  \"problem\": ", (unsigned long long)rep->offset);
    else
        fputs("null,\n  \"problem\": ", stdout);
    if (rep->status)
        json_string(stdout, rep->problem);
    else
        fputs("null", stdout);
    const struct {
        const char *key;
        uint64_t v;
    } counts[] = {
        {"file_size", rep->file_size},
        {"generation", rep->generation},
        {"records", rep->records},
        {"live_records", rep->live_records},
        {"expired_records", rep->expired_records},
        {"replaced_records", rep->replaced_records},
        {"obsolete_records", rep->obsolete_records},
        {"first_id", rep->first_id},
        {"last_id", rep->last_id},
        {"bytes_used", rep->bytes_used},
        {"live_bytes", rep->live_bytes},
        {"dead_bytes", rep->dead_bytes},
        {"free_bytes", rep->free_bytes},
        {"table_slots", rep->table_slots},
        {"index_slots", rep->index_slots},
        {"index_used", rep->index_used},
        {"index_dead", rep->index_dead},
        {"index_displaced", rep->index_displaced},
        {"index_same_home", rep->index_same_home},
        {"index_longest_probe", rep->index_longest_probe},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        json_u64_key(counts[i].key, counts[i].v);
    printf(",\n  \"superseded\": %s,\n  \"collisions\": [", rep->superseded ? "true" : "false");
    for (size_t i = 0; i < cs->n; i++) {
        const struct collision *c = &cs->v[i];
        printf("%s\n    {\"name\": ", i ? "," : "");
        json_string(stdout, c->name);
        printf(", \"id\": %llu, \"slot\": %llu, \"home\": %llu, \"home_name\": ",
               (unsigned long long)c->id, (unsigned long long)c->slot, (unsigned long long)c->home);
        json_string(stdout, c->home_name);
        printf(", \"home_id\": %llu, \"same_home\": %s}", (unsigned long long)c->home_id,
               c->same_home ? "true" : "false");
    }
    puts(cs->n ? "\n  ]\n}" : "]\n}");
}

static int parse_check(int argc, char **argv, const char **segment, bool *verbose, bool *json)
{
    static const struct option longopts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = cli_getopt(argc, argv, "vjh", longopts)) != -1) {
        if (opt == 'v')
            *verbose = true;
        else if (opt == 'j')
            *json = true;
        else
            return common_option(opt, argv[0], check_help);
    }
    return segment_operand(argc, argv, segment);
}

int cmd_check(int argc, char **argv)
{
    const char *segment = NULL;
    bool verbose = false, json = false;
    int status = parse_check(argc, argv, &segment, &verbose, &json);
    if (status != CLI_CONTINUE)
        return status;

    struct speculo_check_report rep;
    struct collisions cs = {NULL, 0, 0, false};
    int rc = speculo_segment_check(segment, &rep, verbose || json ? on_collision : NULL, &cs);
    if (rc < 0) {
        collisions_free(&cs);
        return fail_code(segment, rc);
    }
    if (cs.failed) {
        collisions_free(&cs);
        return fail_code(segment, -ENOMEM);
    }
    if (json)
        print_json(&rep, &cs);
    else if (rep.status)
        printf("offset %llu: %s\n", (unsigned long long)rep.offset, rep.problem);
    else
        print_ok(&rep);
    if (verbose && !json)
        print_collisions(&rep, &cs);
    collisions_free(&cs);
    return finish_stdout(rep.status ? EXIT_ERR : EXIT_OK);
}
