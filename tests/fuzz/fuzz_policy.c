/* fuzz_policy.c - the policy gate (`hostflow policy check`) on hostile
 * policy texts: policy_check_files compiles the texts in the sandbox and
 * runs their examples under the instruction and memory limits.
 *
 * Input: up to three Lua texts separated by a line "--@@":
 *   policy.lua  --@@  policies/m.lua (require("m"))  --@@
 *   policies/tenants/tn_fuzz.lua (an override for tenant tn_fuzz)
 * A missing part means no such file. The gate may accept or refuse; it
 * must never crash, leak or hang (each call is bounded by its budget; run
 * with -timeout=5). A refusal must carry a NUL-terminated message. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "policy.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define REQUIRE(cond)                                                         \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_policy: invariant failed: %s (line %d)\n",  \
                    #cond, __LINE__);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define SEP "\n--@@\n"

static char root[64], file[128], pdir[128], module[160], override[192];

static void cleanup(void)
{
    unlink(file);
    unlink(module);
    unlink(override);
    snprintf(override, sizeof override, "%s/tenants", pdir);
    rmdir(override);
    rmdir(pdir);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[160];

    (void)argc;
    (void)argv;
    log_setup(0, HF_LOG_OFF);   /* hostflow.log() and the gate stay quiet */
    if (token_init() != 0)
        abort();
    snprintf(root, sizeof root, "/tmp/hostflow-fuzz-policy.XXXXXX");
    if (!mkdtemp(root))
        abort();
    snprintf(file, sizeof file, "%s/policy.lua", root);
    snprintf(pdir, sizeof pdir, "%s/policies", root);
    snprintf(module, sizeof module, "%s/m.lua", pdir);
    snprintf(override, sizeof override, "%s/tenants/tn_fuzz.lua", pdir);
    snprintf(path, sizeof path, "%s/tenants", pdir);
    if (mkdir(pdir, 0700) != 0 || mkdir(path, 0700) != 0)
        abort();
    atexit(cleanup);
    return 0;
}

static void put(const char *path, const uint8_t *p, size_t n, int present)
{
    FILE *f;

    if (!present) {
        unlink(path);
        return;
    }
    f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3] = {data, NULL, NULL};
    size_t len[3] = {size, 0, 0};
    char msg[HF_POLICY_ERROR_MAX];
    int rc;

    for (int i = 0; i < 2 && part[i]; i++) {
        const uint8_t *s = len[i] ? memmem(part[i], len[i], SEP, sizeof SEP - 1) : NULL;
        if (!s)
            break;
        part[i + 1] = s + sizeof SEP - 1;
        len[i + 1] = (size_t)(part[i] + len[i] - part[i + 1]);
        len[i] = (size_t)(s - part[i]);
    }
    put(file, part[0], len[0], 1);
    put(module, part[1], len[1], part[1] != NULL);
    put(override, part[2], len[2], part[2] != NULL);

    memset(msg, 'X', sizeof msg);
    rc = policy_check_files(file, pdir, msg, sizeof msg);
    REQUIRE(rc == 0 || rc == HF_EPOLICY);
    REQUIRE(memchr(msg, '\0', sizeof msg) != NULL);
    if (getenv("FUZZ_POLICY_VERBOSE"))
        fprintf(stderr, "fuzz_policy: rc=%d %s\n", rc, msg);
    return 0;
}
