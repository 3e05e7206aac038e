/*
 * The writer role: one writer per segment whatever the PID namespaces, a
 * dead writer (SIGKILL, pid 1 of its namespace) taken over at once, a
 * forked child neither writing nor keeping the role alive; leftover
 * temporary files of dead writers removed.
 *
 * The PID namespace cases run a writer in a new PID namespace with
 * unshare(1) (--pid --fork --mount-proc, as a container without
 * --pid=host): as root, with util-linux's unshare; skipped otherwise.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "th.h"

/* ---- the helper modes of check_lib (see role_helper_main) ---------- */

int role_helper_main(int argc, char **argv);

/*
 *   check_lib --hold-writer SEG   open SEG's writer, commit "held", print
 *                                 "ready\n"; then at each byte on stdin:
 *                                 'p' commit a chunk and print "ok\n";
 *                                 EOF close and exit
 *   check_lib --try-writer SEG    print speculo_writer_open's result code
 */
int role_helper_main(int argc, char **argv)
{
    if (argc != 3)
        return -1;
    speculo_writer *w;
    int rc = speculo_writer_open(argv[2], NULL, &w);
    if (strcmp(argv[1], "--try-writer") == 0) {
        printf("%d\n", rc);
        if (rc == 0)
            speculo_writer_close(w);
        return 0;
    }
    if (strcmp(argv[1], "--hold-writer") != 0)
        return -1;
    if (rc < 0) {
        printf("error %d\n", rc);
        return 1;
    }
    struct speculo_commit_options o = {.name = "held"};
    if (speculo_writer_put(w, "held", 4, &o, NULL) < 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) == 1) {
        if (c == 'p') {
            if (speculo_writer_put(w, "more", 4, NULL, NULL) < 0)
                return 1;
            printf("ok\n");
            fflush(stdout);
        }
    }
    speculo_writer_close(w);
    return 0;
}

/* A helper process, its stdin and stdout. */
struct helper {
    pid_t pid;
    int in, out;
};

static bool have_unshare(void)
{
    return th_root() && system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") == 0;
}

/* Run check_lib MODE SEG, in a new PID namespace when @pidns. */
static void helper_start(struct helper *h, bool pidns, const char *mode, const char *seg)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    h->pid = t_fork();
    ck_assert_int_ge(h->pid, 0);
    if (h->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (pidns)
            execlp("unshare", "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", self,
                   mode, seg, (char *)NULL);
        else
            execl(self, self, mode, seg, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h->in = in[1];
    h->out = out[0];
}

/* The helper's first line of output (10 s at most). */
static void helper_line(struct helper *h, char *buf, size_t size)
{
    struct t_sync s = {{h->out, -1}};
    size_t n = 0;
    while (n + 1 < size) {
        int c = t_sync_wait(&s, 10000);
        ck_assert_msg(c >= 0, "no line from the helper: %d", c);
        if (c == '\n')
            break;
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
}

/* The pid (here) of the process unshare(1) started: pid 1 of its
 * namespace. */
static pid_t helper_child(const struct helper *h)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)h->pid, (int)h->pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int pid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return pid;
}

static void helper_send(struct helper *h, char c)
{
    ck_assert_int_eq(write(h->in, &c, 1), 1);
}

/* Close the helper's stdin and wait for it; returns its status. */
static int helper_end(struct helper *h)
{
    close(h->in);
    int rc = t_wait(h->pid, 10000);
    close(h->out);
    return rc;
}

static int try_writer_in(bool pidns, const char *seg)
{
    struct helper h;
    char line[64];
    helper_start(&h, pidns, "--try-writer", seg);
    helper_line(&h, line, sizeof line);
    ck_assert_int_eq(helper_end(&h), 0);
    return atoi(line);
}

/* ---- one writer, in one process --------------------------------------- */

/* A refused second open, readers, descriptions in the writer's own process
 * open and close the segment file: none of it may drop the role. */
START_TEST(role_survives_other_opens_in_writer_process)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "a", "n");
    speculo_writer *w2;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w2), -EBUSY);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    speculo_reader_close(r);
    char buf[1024];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof buf), 0);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -EBUSY);
    ck_assert_int_eq(try_writer_in(false, "s"), -EBUSY);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(try_writer_in(false, "s"), -EBUSY);
    speculo_writer_close(w);
    ck_assert_int_eq(try_writer_in(false, "s"), 0);
}
END_TEST

/* ---- fork -------------------------------------------------------------- */

START_TEST(forked_child_cannot_write_and_its_close_keeps_role)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 8, &p), 0); /* a reservation the child inherits */
    memcpy(p, "parent!!", 8);
    struct th_child child;
    if (th_fork(&child)) {
        void *q;
        T_CHILD_EQ(speculo_writer_commit(w, NULL, NULL), -EINVAL);
        T_CHILD_EQ(speculo_writer_alloc(w, 4, &q), -EBUSY);
        T_CHILD_EQ(speculo_writer_put(w, "kid", 3, NULL, NULL), -EBUSY);
        T_CHILD_EQ(speculo_writer_obsolete(w, a), -EBUSY);
        T_CHILD_EQ(speculo_writer_gc(w), -EBUSY);
        speculo_writer_close(w);
        _exit(0);
    }
    ck_assert_int_eq(t_wait(child.pid, 10000), 0);
    ck_assert_int_eq(try_writer_in(false, "s"), -EBUSY);
    uint64_t b;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &b), 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_next(r, b, "parent!!", 8);
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, getpid());
    ck_assert_int_eq(info.writer_alive, 1);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* The writer forks a child that outlives it: the child must not keep the
 * role alive. */
START_TEST(forked_child_does_not_keep_role_after_writer_dies)
{
    pid_t *grandchild = t_shared_alloc(sizeof *grandchild);
    ck_assert_ptr_nonnull(grandchild);
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        T_CHILD_EQ(speculo_writer_put(w, "kept", 4, NULL, NULL), 0);
        struct t_sync forked;
        T_CHILD_EQ(t_sync_init(&forked), 0);
        pid_t g = fork(); /* not t_fork: it must outlive its parent */
        T_CHILD_ASSERT(g >= 0);
        if (g == 0) {
            /* fork() has returned here: the library's handler has run */
            t_sync_post(&forked, 1);
            for (;;)
                pause();
        }
        T_CHILD_EQ(t_sync_wait(&forked, 10000), 1);
        *grandchild = g;
        th_child_ready(&writer);
        for (;;)
            pause();
    }
    th_await_ready(&writer);
    ck_assert_int_eq(try_writer_in(false, "s"), -EBUSY);
    ck_assert_int_eq(t_kill_wait(writer.pid, SIGKILL), 128 + SIGKILL);
    ck_assert_int_eq(kill(*grandchild, 0), 0); /* the child lives on */
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, 0, "kept");
    speculo_reader_close(r);
    speculo_writer_close(w);
    kill(*grandchild, SIGKILL);
    t_shared_free(grandchild, sizeof *grandchild);
}
END_TEST

/* ---- PID namespaces ---------------------------------------------------- */

START_TEST(writer_in_pid_namespace_keeps_role_against_host)
{
    if (!have_unshare()) {
        fprintf(stderr, "writer_in_pid_namespace_keeps_role_against_host: skipped\n");
        return;
    }
    struct helper h;
    char line[64];
    helper_start(&h, true, "--hold-writer", "s");
    helper_line(&h, line, sizeof line);
    ck_assert_str_eq(line, "ready");
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBUSY);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -EBUSY);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_alive, 1);
    ck_assert_int_eq(info.writer_pid, 1); /* as the writer sees itself */
    /* another namespace too */
    ck_assert_int_eq(try_writer_in(true, "s"), -EBUSY);
    ck_assert_int_eq(helper_end(&h), 0);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_alive, 0);
    speculo_reader_close(r);
}
END_TEST

START_TEST(host_writer_keeps_role_against_pid_namespace)
{
    if (!have_unshare()) {
        fprintf(stderr, "host_writer_keeps_role_against_pid_namespace: skipped\n");
        return;
    }
    speculo_writer *w = th_writer("s", 0);
    ck_assert_int_eq(try_writer_in(true, "s"), -EBUSY);
    speculo_writer_close(w);
    ck_assert_int_eq(try_writer_in(true, "s"), 0);
}
END_TEST

/* Pid 1 of its namespace, SIGKILLed: the role is free the moment it is
 * dead, with everything it committed. */
START_TEST(killed_writer_in_pid_namespace_taken_over_at_once)
{
    if (!have_unshare()) {
        fprintf(stderr, "killed_writer_in_pid_namespace_taken_over_at_once: skipped\n");
        return;
    }
    struct helper h;
    char line[64];
    helper_start(&h, true, "--hold-writer", "s");
    helper_line(&h, line, sizeof line);
    ck_assert_str_eq(line, "ready");
    for (int i = 0; i < 3; i++) {
        helper_send(&h, 'p');
        helper_line(&h, line, sizeof line);
        ck_assert_str_eq(line, "ok");
    }
    /* from outside, as a container is killed: its pid 1 cannot be
     * SIGKILLed from inside */
    ck_assert_int_eq(kill(helper_child(&h), SIGKILL), 0);
    ck_assert_int_ne(helper_end(&h), 0); /* unshare reaped its child: dead */
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), 0); /* at once: no retry */
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "held", &c), 0);
    int more = 0;
    while (speculo_reader_next(r, &c) == 0)
        more += c.size == 4 && memcmp(c.data, "more", 4) == 0;
    ck_assert_int_eq(more, 3);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* ---- leftovers ----------------------------------------------------------- */

static void make_file(const char *name)
{
    char path[4096];
    ck_assert_int_eq(t_path(path, sizeof path, name), 0);
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    close(fd);
}

static bool file_exists(const char *name)
{
    char path[4096];
    ck_assert_int_eq(t_path(path, sizeof path, name), 0);
    return access(path, F_OK) == 0;
}

/* Temporary files of dead writers go with the segment, and when a writer
 * takes it; one a live process holds stays, so do other segments' and
 * names that only look alike. */
START_TEST(dead_writers_temporaries_removed_with_segment)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_writer_close(w);
    const char *dead[] = {".s.gc.12345", ".s.gc.0123456789abcdef", ".s.new.00000000000000ff"};
    const char *kept[] = {".t.gc.0123456789abcdef", ".s.gc.notours", ".s.gc.gc.0123456789abcdef",
                          ".s.lock"};
    for (size_t i = 0; i < 3; i++)
        make_file(dead[i]);
    for (size_t i = 0; i < 4; i++)
        make_file(kept[i]);
    make_file(".s.gc.fedcba9876543210");
    struct th_child holder;
    if (th_fork(&holder)) {
        char path[4096];
        T_CHILD_EQ(t_path(path, sizeof path, ".s.gc.fedcba9876543210"), 0);
        int fd = open(path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        T_CHILD_EQ(fcntl(fd, F_OFD_SETLK, &fl), 0);
        th_child_ready(&holder);
        for (;;)
            pause();
    }
    th_await_ready(&holder);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    for (size_t i = 0; i < 3; i++)
        ck_assert_msg(!file_exists(dead[i]), "%s left", dead[i]);
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(file_exists(kept[i]), "%s removed", kept[i]);
    ck_assert(file_exists(".s.gc.fedcba9876543210"));
    ck_assert_int_eq(t_kill_wait(holder.pid, SIGKILL), 128 + SIGKILL);
    /* a writer taking the segment removes them too */
    make_file(dead[1]);
    w = th_writer("s", 0);
    ck_assert(!file_exists(dead[1]));
    ck_assert(!file_exists(".s.gc.fedcba9876543210"));
    speculo_writer_close(w);
}
END_TEST

Suite *role_suite(void)
{
    Suite *s = suite_create("role");
    TCase *tc = th_tcase("process", 30);
    tcase_add_test(tc, role_survives_other_opens_in_writer_process);
    tcase_add_test(tc, forked_child_cannot_write_and_its_close_keeps_role);
    tcase_add_test(tc, forked_child_does_not_keep_role_after_writer_dies);
    tcase_add_test(tc, dead_writers_temporaries_removed_with_segment);
    suite_add_tcase(s, tc);
    tc = th_tcase("pid_namespaces", 60);
    tcase_add_test(tc, writer_in_pid_namespace_keeps_role_against_host);
    tcase_add_test(tc, host_writer_keeps_role_against_pid_namespace);
    tcase_add_test(tc, killed_writer_in_pid_namespace_taken_over_at_once);
    suite_add_tcase(s, tc);
    return s;
}
