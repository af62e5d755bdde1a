/* policy_watch.h - reload the policy when its files change on disk. */
#ifndef HF_POLICY_WATCH_H
#define HF_POLICY_WATCH_H

#include <stddef.h>

struct policy_engine;
struct policy_watch;

/* Watch file, dir and dir/tenants with inotify from a thread of its own;
 * after a change and 200 ms of quiet, reload e. 0, or -1 with err. */
int policy_watch_start(struct policy_engine *e, const char *file, const char *dir,
                       struct policy_watch **out, char *err, size_t errlen);
/* Stop the thread and free; NULL is fine. */
void policy_watch_stop(struct policy_watch *w);

#endif
