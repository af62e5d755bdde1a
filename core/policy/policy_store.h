/* policy_store.h - a node that takes its policy from the store.
 *
 * With --policy-source store, the engine's versions come from the store's
 * active activation (`hostflow policy publish` / `rollback`) instead of
 * files. A thread polls the activation every HF_POLICY_POLL_MS (on
 * PostgreSQL a notification wakes it at once) and reloads
 * when it changed; the reload goes through the engine's usual gate
 * (compile, examples, atomic switch), so a version that fails on this node
 * leaves it on its last good one, and says so in its status. */
#ifndef HF_POLICY_STORE_H
#define HF_POLICY_STORE_H

#include <stddef.h>

#define HF_POLICY_POLL_MS 250

struct policy_engine;
struct policy_store;

/* An engine on the store at db_path, loaded with the active version.
 * HF_ENOTFOUND (with a sentence in err) when nothing was ever published,
 * HF_EPOLICY when the active version does not pass here. */
int policy_store_open(const char *db_path, struct policy_store **out,
                      struct policy_engine **engine, char *err, size_t errlen);
/* Start polling for new activations. 0, or -1 with err. */
int policy_store_watch(struct policy_store *ps, char *err, size_t errlen);
/* Stop polling; then free the engine, then this. NULL is fine. */
void policy_store_stop(struct policy_store *ps);
void policy_store_free(struct policy_store *ps);

/* The label of a stored version's chunks in error messages. */
void policy_store_label(const char *version, char *out, size_t outlen);

#endif
