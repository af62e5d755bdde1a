/* policy_watch.c - inotify on the policy's directories, debounced reload.
 *
 * Directories are watched rather than files: editors that save by writing
 * a new file and renaming it over the old one replace the inode, which a
 * watch on the file itself would lose. */
#define _GNU_SOURCE
#include "policy_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "clock.h"
#include "log.h"
#include "policy.h"

#define DEBOUNCE_MS 200
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | \
                    IN_DELETE | IN_ATTRIB)

struct policy_watch {
    struct policy_engine *engine;
    pthread_t thread;
    int inotify_fd;
    int stop_pipe[2];                 /* written once to stop the thread */
    char file_dir[PATH_MAX];          /* directory of the policy file */
    char file_name[NAME_MAX + 1];     /* its base name */
    char dir[PATH_MAX];               /* the policy directory */
    char tenants[PATH_MAX];           /* dir/tenants */
    char dir_name[NAME_MAX + 1];      /* base name of dir, seen from its parent */
    int wd_file_dir, wd_dir, wd_tenants;
};

/* (Re)add every watch; a directory that does not exist yet is skipped and
 * picked up when it appears. Adding an existing watch returns its wd. */
static void add_watches(struct policy_watch *w)
{
    w->wd_file_dir = inotify_add_watch(w->inotify_fd, w->file_dir, WATCH_MASK);
    w->wd_dir = inotify_add_watch(w->inotify_fd, w->dir, WATCH_MASK);
    w->wd_tenants = inotify_add_watch(w->inotify_fd, w->tenants, WATCH_MASK);
}

static int ends_with_lua(const char *name)
{
    size_t n = strlen(name);

    return n > 4 && strcmp(name + n - 4, ".lua") == 0;
}

/* Does this event touch a policy text (or a directory holding them)? A
 * lost event (the queue overflowed) might have, and so might a swap of
 * "..data" in a Kubernetes ConfigMap mount, where the policy names are
 * symbolic links through it: reloading texts that did not change costs a
 * read and a hash. */
static int relevant(const struct policy_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return 1;
    if (!ev->len)
        return 0;
    if (ev->wd == w->wd_file_dir &&
        (strcmp(ev->name, w->file_name) == 0 || strcmp(ev->name, w->dir_name) == 0 ||
         strncmp(ev->name, "..", 2) == 0))
        return 1;
    if (ev->wd == w->wd_dir && (ends_with_lua(ev->name) || strcmp(ev->name, "tenants") == 0))
        return 1;
    return ev->wd == w->wd_tenants && ends_with_lua(ev->name);
}

static void *watch_loop(void *arg)
{
    struct policy_watch *w = arg;
    long long due = -1;                /* when to reload, -1 = nothing pending */
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

    prctl(PR_SET_NAME, "hf-policy-watch"); /* its name in top -H, ps -L */
    for (;;) {
        struct pollfd fds[2] = {{w->inotify_fd, POLLIN, 0}, {w->stop_pipe[0], POLLIN, 0}};
        int timeout = due < 0 ? -1 : (int)(due - clock_mono_ms() > 0 ? due - clock_mono_ms() : 0);
        int n = poll(fds, 2, timeout);

        if (n < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            break;
        if (n > 0 && (fds[0].revents & POLLIN)) {
            ssize_t len = read(w->inotify_fd, buf, sizeof buf);
            for (char *p = buf; len > 0 && p < buf + len;) {
                struct inotify_event *ev = (struct inotify_event *)p;
                if (relevant(w, ev))
                    due = clock_mono_ms() + DEBOUNCE_MS; /* wait for the editor to finish */
                p += sizeof *ev + ev->len;
            }
            add_watches(w);
        }
        if (due >= 0 && clock_mono_ms() >= due) {
            char msg[HF_POLICY_ERROR_MAX];
            int changed;

            due = -1;
            if (policy_engine_reload(w->engine, &changed, msg, sizeof msg) == 0 && !changed)
                log_msg(HF_LOG_DEBUG, "policy: files touched, texts unchanged");
        }
    }
    return NULL;
}

static void split(const char *path, char *dir, size_t dirlen, char *base, size_t baselen)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        snprintf(dir, dirlen, ".");
        snprintf(base, baselen, "%s", path);
    } else {
        snprintf(dir, dirlen, "%.*s", (int)(slash == path ? 1 : slash - path), path);
        snprintf(base, baselen, "%s", slash + 1);
    }
}

int policy_watch_start(struct policy_engine *e, const char *file, const char *dir,
                       struct policy_watch **out, char *err, size_t errlen)
{
    struct policy_watch *w = calloc(1, sizeof *w);
    char parent[PATH_MAX];

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->engine = e;
    split(file, w->file_dir, sizeof w->file_dir, w->file_name, sizeof w->file_name);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->tenants, sizeof w->tenants, "%s/tenants", dir);
    split(dir, parent, sizeof parent, w->dir_name, sizeof w->dir_name);
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0 || pipe2(w->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "inotify: %s", strerror(errno));
        if (w->inotify_fd >= 0)
            close(w->inotify_fd);
        free(w);
        return -1;
    }
    add_watches(w);
    if (w->wd_file_dir < 0)
        log_msg(HF_LOG_WARN, "policy: cannot watch %s (%s); reload with SIGHUP",
                w->file_dir, strerror(errno));
    if (pthread_create(&w->thread, NULL, watch_loop, w) != 0) {
        snprintf(err, errlen, "cannot start the policy watcher thread");
        close(w->inotify_fd);
        close(w->stop_pipe[0]);
        close(w->stop_pipe[1]);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void policy_watch_stop(struct policy_watch *w)
{
    if (!w)
        return;
    if (write(w->stop_pipe[1], "x", 1) != 1)
        log_msg(HF_LOG_WARN, "policy watcher: cannot signal stop");
    pthread_join(w->thread, NULL);
    close(w->inotify_fd);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    free(w);
}
