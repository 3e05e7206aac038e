/*
 * check: speculo_segment_check(). Every corruption class of the hostile
 * tests (tests/common/t_corrupt.c) is found at its offset with its reason;
 * the damage no single reader call sees (the id table, the name index,
 * the header's totals, obsolete marks) too; sound files are counted right,
 * also while a writer commits, and after a writer died in a commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "t_corrupt.h"
#include "th.h"

static struct speculo_check_report check_ok(const char *seg)
{
    struct speculo_check_report rep;
    ck_assert_int_eq(speculo_segment_check(seg, &rep, NULL, NULL), 0);
    ck_assert_msg(rep.status == 0, "offset %llu: %s", (unsigned long long)rep.offset, rep.problem);
    ck_assert_str_eq(rep.problem, "");
    return rep;
}

/* The check finds a problem at @offset whose text contains @reason. */
static void check_finds(const char *seg, uint64_t offset, const char *reason)
{
    struct speculo_check_report rep;
    ck_assert_int_eq(speculo_segment_check(seg, &rep, NULL, NULL), 0);
    ck_assert_msg(rep.status == -EBADMSG, "status %d, expected a problem with '%s'", rep.status,
                  reason);
    ck_assert_msg(rep.offset == offset && strstr(rep.problem, reason),
                  "found \"offset %llu: %s\", expected offset %llu and '%s'",
                  (unsigned long long)rep.offset, rep.problem, (unsigned long long)offset, reason);
}

START_TEST(every_corruption_class_found_at_its_offset)
{
    for (size_t i = 0; i < t_corruption_count; i++) {
        const struct t_corruption *k = &t_corruptions[i];
        struct t_fixture f;
        ck_assert_int_eq(t_fixture_make(NULL, &f), 0);
        check_ok("s");
        uint64_t at;
        ck_assert_msg(k->make(&f, &at) == 0, "%s: could not make it", k->name);
        struct speculo_check_report rep;
        ck_assert_int_eq(speculo_segment_check("s", &rep, NULL, NULL), 0);
        ck_assert_msg(rep.status == k->status && rep.offset == at && strstr(rep.problem, k->reason),
                      "%s: status %d \"offset %llu: %s\", expected status %d, offset %llu, '%s'",
                      k->name, rep.status, (unsigned long long)rep.offset, rep.problem, k->status,
                      (unsigned long long)at, k->reason);
        for (const char *p = rep.problem; *p; p++)
            ck_assert_msg(*p >= 0x20 && *p < 0x7f, "%s: unprintable byte in the problem", k->name);
        t_fixture_done(&f);
        ck_assert_int_eq(unlink(f.path), 0);
    }
}
END_TEST

START_TEST(sound_segment_counted_by_state)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t live = th_puts(w, "live", NULL);
    th_puts(w, "v1", "k");
    th_puts(w, "v2", "k");
    uint64_t gone = th_puts(w, "gone", NULL);
    th_put(w, "by", 2, NULL, 0, live);
    th_put(w, "ttl", 3, NULL, 1, 0); /* expires 1 ns after its commit */
    ck_assert_int_eq(speculo_writer_obsolete(w, gone), 0);
    struct speculo_check_report rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 6);
    ck_assert_uint_eq(rep.live_records, 2);     /* v2, by */
    ck_assert_uint_eq(rep.expired_records, 1);  /* ttl */
    ck_assert_uint_eq(rep.replaced_records, 2); /* live (by `replaces`), v1 (by name) */
    ck_assert_uint_eq(rep.obsolete_records, 1); /* gone */
    ck_assert_uint_eq(rep.first_id, 1);
    ck_assert_uint_eq(rep.last_id, 6);
    ck_assert_uint_eq(rep.generation, 1);
    ck_assert_uint_eq(rep.file_size, 64 << 10);
    ck_assert_uint_eq(rep.bytes_used, 6 * 128);
    ck_assert_uint_eq(rep.live_bytes, 2 * 128);
    ck_assert_uint_eq(rep.dead_bytes, 4 * 128);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    ck_assert_uint_eq(rep.free_bytes, h->capacity - h->records_off - rep.bytes_used);
    ck_assert_uint_eq(rep.table_slots, h->table_slots);
    ck_assert_uint_eq(rep.index_slots, h->index_slots);
    t_seg_unmap(&m);
    ck_assert_uint_eq(rep.index_used, 1);
    ck_assert_uint_eq(rep.index_dead, 0);
    ck_assert_uint_eq(rep.index_longest_probe, 1);
    ck_assert_int_eq(rep.superseded, 0);

    /* the name's newest version dead: its slot stays, for a dead name */
    ck_assert_int_eq(speculo_writer_obsolete(w, 3), 0);
    rep = check_ok("s");
    ck_assert_uint_eq(rep.index_used, 1);
    ck_assert_uint_eq(rep.index_dead, 1);

    /* a collection drops the dead records, keeps ids */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 1);
    ck_assert_uint_eq(rep.live_records, 1);
    ck_assert_uint_eq(rep.dead_bytes, 0);
    ck_assert_uint_eq(rep.first_id, 5);
    ck_assert_uint_eq(rep.generation, 2);
    ck_assert_uint_eq(rep.index_used, 0);
    speculo_writer_close(w);
    rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 1);
}
END_TEST

START_TEST(empty_and_missing_segments)
{
    speculo_writer *w = th_writer("s", 0);
    struct speculo_check_report rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 0);
    ck_assert_uint_eq(rep.first_id, 0);
    ck_assert_uint_eq(rep.bytes_used, 0);
    speculo_writer_close(w);
    memset(&rep, 0x5a, sizeof rep);
    struct speculo_check_report before = rep;
    ck_assert_int_eq(speculo_segment_check("absent", &rep, NULL, NULL), -ENOENT);
    ck_assert(memcmp(&rep, &before, sizeof rep) == 0); /* untouched on failure */
    ck_assert_int_eq(speculo_segment_check("a/b", &rep, NULL, NULL), -EINVAL);
    ck_assert_int_eq(speculo_segment_check("s", NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(speculo_segment_check_at(t_dir(), "s", &rep, NULL, NULL), 0);
    ck_assert_int_eq(rep.status, 0);
    ck_assert_int_eq(speculo_segment_check_at("/nonexistent-dir", "s", &rep, NULL, NULL), -ENOENT);
}
END_TEST

struct seen {
    int n;
    char name[64], home_name[64];
    uint64_t home, slot;
    int same_home;
};

static void note_collision(const struct speculo_name_collision *c, void *arg)
{
    struct seen *s = arg;
    ck_assert_uint_ne(c->home, c->slot);
    ck_assert_str_ne(c->name, c->home_name);
    if (s->n++ == 0) {
        snprintf(s->name, sizeof s->name, "%s", c->name);
        snprintf(s->home_name, sizeof s->home_name, "%s", c->home_name);
        s->home = c->home;
        s->slot = c->slot;
        s->same_home = c->same_home;
    }
}

/* Two names of the same home slot, found by hashing candidates with the
 * segment's seed. */
START_TEST(colliding_names_reported)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "x", "first");
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t mask = t_seg_hdr(&m)->index_slots - 1;
    char other[32];
    uint64_t home = t_seg_same_home(&m, "first", other, sizeof other);
    th_puts(w, "y", other);
    struct seen s = {0};
    struct speculo_check_report rep;
    ck_assert_int_eq(speculo_segment_check("s", &rep, note_collision, &s), 0);
    ck_assert_int_eq(rep.status, 0);
    ck_assert_uint_eq(rep.index_used, 2);
    ck_assert_uint_eq(rep.index_displaced, 1);
    ck_assert_uint_eq(rep.index_same_home, 2);
    ck_assert_uint_eq(rep.index_longest_probe, 2);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.name, other);
    ck_assert_str_eq(s.home_name, "first");
    ck_assert_uint_eq(s.home, home);
    ck_assert_uint_eq(s.slot, (home + 1) & mask);
    ck_assert_int_eq(s.same_home, 1);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

/* Damage that no reader call sees by itself. */
START_TEST(cross_structure_damage_found)
{
    struct t_fixture f;
    ck_assert_int_eq(t_fixture_make(NULL, &f), 0);
    struct seg_header *h = t_seg_hdr(&f.m);
    struct name_slot *slots = (struct name_slot *)(void *)(f.m.p + h->index_off);
    uint64_t mask = h->index_slots - 1;
    uint64_t hf = speculo__name_hash(h->hash_seed, "first", 5), home = hf & mask;
    uint64_t at = h->index_off + home * sizeof(struct name_slot);

    /* a slot whose hash is not its name's: lookups of the name miss it */
    slots[home].hash ^= 1;
    check_finds("s", at, "its hash is not that of 'first'");
    slots[home].hash = hf;

    /* the name moved to the first empty slot after its home, its home
     * emptied: a lookup stops at the empty home */
    uint64_t far = (home + 1) & mask;
    while (atomic_load(&slots[far].off) != 0)
        far = (far + 1) & mask;
    slots[far].hash = hf;
    atomic_store(&slots[far].off, f.off[0]);
    atomic_store(&slots[home].off, 0);
    check_finds("s", h->index_off + far * sizeof(struct name_slot),
                "an empty slot lies between its home slot");
    /* ...and in both slots */
    atomic_store(&slots[home].off, f.off[0]);
    uint64_t later = far > home ? far : home;
    check_finds("s", h->index_off + later * sizeof(struct name_slot), "both hold 'first'");
    atomic_store(&slots[far].off, 0);
    check_ok("s");

    /* a name missing from the index (not the last record) */
    atomic_store(&slots[home].off, 0);
    check_finds("s", f.off[0], "the name index has no slot for it");
    atomic_store(&slots[home].off, f.off[0]);

    /* obsolete marks name newer chunks of the file */
    atomic_store(&t_fixture_rec(&f, 1)->obsoleted_by, f.id[0]);
    check_finds("s", f.off[1], "obsoleted by id 1, which is not newer");
    atomic_store(&t_fixture_rec(&f, 0)->obsoleted_by, 99);
    atomic_store(&t_fixture_rec(&f, 1)->obsoleted_by, 0);
    check_ok("s"); /* 99: a record committed after the check's walk, maybe */
    atomic_store(&t_fixture_rec(&f, 0)->obsoleted_by, 0);
    check_ok("s");

    /* the header's other fields */
    h->base_capacity = f.capacity + 1;
    check_finds("s", offsetof(struct seg_header, base_capacity), "larger than the file");
    h->base_capacity = f.capacity;
    atomic_store(&h->nrecords, 1);
    check_finds("s", offsetof(struct seg_header, nrecords), "1 records counted, but 3");
    atomic_store(&h->nrecords, 2); /* one behind: a writer killed in a commit */
    check_ok("s");
    atomic_store(&h->nrecords, 3);
    atomic_store(&h->committed_end, f.off[1]);
    check_finds("s", offsetof(struct seg_header, committed_end), "committed end");
    atomic_store(&h->committed_end, f.off[2]); /* one behind */
    check_ok("s");
    t_fixture_done(&f);
}
END_TEST

/* A writer killed between publishing its last record and indexing it (or
 * counting it) leaves a file a reader and the next writer accept: so does
 * the check. Here the last record's name is taken out of the index. */
START_TEST(commit_in_progress_is_no_problem)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "a", "k");
    uint64_t last = th_puts(w, "b", "new");
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    struct seg_header *h = t_seg_hdr(&m);
    struct name_slot *slots = (struct name_slot *)(void *)(m.p + h->index_off);
    uint64_t home = speculo__name_hash(h->hash_seed, "new", 3) & (h->index_slots - 1);
    ck_assert_uint_ne(atomic_load(&slots[home].off), 0);
    atomic_store(&slots[home].off, 0);
    atomic_store(&h->nrecords, 1);
    atomic_store(&h->last_id, last - 1);
    struct speculo_check_report rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 2);
    ck_assert_uint_eq(rep.index_used, 1);
    t_seg_unmap(&m);
    /* the next writer repairs it */
    w = th_writer("s", 0);
    speculo_writer_close(w);
    rep = check_ok("s");
    ck_assert_uint_eq(rep.index_used, 2);
}
END_TEST

/* A writer committing, updating names and collecting in another process
 * while the file is checked: never a problem. */
START_TEST(check_while_writer_commits)
{
    speculo_writer *w0 = th_writer("s", 64 << 10);
    speculo_writer_close(w0);
    struct {
        _Atomic int stop;
        _Atomic uint64_t gcs; /* explicit collections the writer made */
    } *sh = t_shared_alloc(sizeof *sh);
    ck_assert_ptr_nonnull(sh);
    struct th_child c;
    if (th_fork(&c)) {
        struct speculo_writer_options o = {.capacity = 64 << 10};
        speculo_writer *w = th_child_writer("s", &o);
        th_child_ready(&c);
        char name[16];
        for (uint64_t i = 0; !atomic_load(&sh->stop); i++) {
            struct speculo_commit_options co = {.name = name, .ttl_ns = i % 3 ? 0 : 1000000};
            snprintf(name, sizeof name, "n%llu", (unsigned long long)(i % 50));
            T_CHILD_ASSERT(speculo_writer_put(w, "payload", 7, i % 2 ? &co : NULL, NULL) == 0);
            if (i % 1000 == 999) {
                T_CHILD_ASSERT(speculo_writer_gc(w) == 0);
                atomic_fetch_add(&sh->gcs, 1);
            }
        }
        speculo_writer_close(w);
        _exit(0);
    }
    th_await_ready(&c);
    /* until checks have run across several collections, however fast the
     * machine lets either side go */
    uint64_t gcs_before = atomic_load(&sh->gcs);
    int64_t t0 = t_mono_ns();
    int checks = 0;
    while ((checks < 20 || atomic_load(&sh->gcs) < gcs_before + 5) &&
           t_ms_since(t0) < T_PATIENCE_MS) {
        struct speculo_check_report rep;
        ck_assert_int_eq(speculo_segment_check("s", &rep, NULL, NULL), 0);
        ck_assert_msg(rep.status == 0, "check %d: offset %llu: %s", checks,
                      (unsigned long long)rep.offset, rep.problem);
        checks++;
    }
    ck_assert_msg(checks >= 20 && atomic_load(&sh->gcs) >= gcs_before + 5,
                  "%d checks, %llu collections", checks,
                  (unsigned long long)(atomic_load(&sh->gcs) - gcs_before));
    atomic_store(&sh->stop, 1);
    ck_assert_int_eq(t_wait(c.pid, 10000), 0);
    t_sync_close(&c.ready);
    t_shared_free(sh, sizeof *sh);
    check_ok("s");
}
END_TEST

/* Found by fuzz_reader: a collection copies a record as it is, history
 * included (`replaces`, the stored name hash), so that history is no
 * problem: a file the writer collected is sound. */
START_TEST(collected_history_is_no_problem)
{
    struct t_fixture f;
    ck_assert_int_eq(t_fixture_make(NULL, &f), 0);
    t_fixture_rec(&f, 2)->replaces = UINT64_C(280375465017344);
    t_fixture_rec(&f, 0)->name_hash ^= 0xff;
    t_fixture_done(&f);
    check_ok("s");
    speculo_writer *w = th_writer("s", 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    struct speculo_check_report rep = check_ok("s");
    ck_assert_uint_eq(rep.records, 3);
}
END_TEST

/* Found by fuzz_reader: a header whose last id is near 2^63 lets a writer
 * go on past it, to ids that the next writer taking over refuses. The
 * check says so, where the takeover fails. */
START_TEST(ids_from_2_63_found_as_the_takeover_refuses_them)
{
    struct t_fixture f;
    ck_assert_int_eq(t_fixture_make(NULL, &f), 0);
    atomic_store(&t_seg_hdr(&f.m)->last_id, UINT64_MAX / 2 - 2);
    t_fixture_done(&f);
    check_ok("s");
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = 0;
    for (int i = 0; i < 3; i++)
        id = th_puts(w, "late", NULL);
    speculo_writer_close(w);
    ck_assert_uint_eq(id, UINT64_MAX / 2 + 1);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t offs[6];
    ck_assert_int_eq(t_seg_records(&m, offs, 6), 6);
    t_seg_unmap(&m);
    check_finds("s", offs[4], "from 2^63 - 1 on are refused by a writer taking over");
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBADMSG);
}
END_TEST

Suite *check_suite(void)
{
    Suite *s = suite_create("check");
    TCase *tc = th_tcase("check", 30);
    tcase_add_test(tc, every_corruption_class_found_at_its_offset);
    tcase_add_test(tc, sound_segment_counted_by_state);
    tcase_add_test(tc, empty_and_missing_segments);
    tcase_add_test(tc, colliding_names_reported);
    tcase_add_test(tc, cross_structure_damage_found);
    tcase_add_test(tc, commit_in_progress_is_no_problem);
    tcase_add_test(tc, check_while_writer_commits);
    tcase_add_test(tc, collected_history_is_no_problem);
    tcase_add_test(tc, ids_from_2_63_found_as_the_takeover_refuses_them);
    suite_add_tcase(s, tc);
    return s;
}
