/* webhook_secret.c - server key file, sealed endpoint secrets, signatures. */
#define _POSIX_C_SOURCE 200809L
#include "webhook_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"

/* fsync the directory that holds path, so that a name just linked into
 * it is on disk (best effort: the key itself is already synced). */
static void sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Create path with a fresh key, whole or not at all: written and synced
 * under a temporary name, then linked into place, so two processes
 * starting together end up with one key and a crash leaves no empty file. */
static int create_key(const char *path, char *err, size_t errlen)
{
    unsigned char key[HF_SEAL_KEY_BYTES];
    char tmp[4096];
    int fd, rc;

    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create webhook key file %s: %s", path, strerror(errno));
        return -1;
    }
    token_random(key, sizeof key);
    rc = fd_write_all(fd, key, sizeof key);
    token_wipe(key, sizeof key);
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc == 0 && link(tmp, path) != 0 && errno != EEXIST)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "cannot write webhook key file %s: %s", path, strerror(errno));
    unlink(tmp);
    if (rc == 0)
        sync_parent(path); /* the new name too must survive a power loss */
    if (rc == 0)
        log_msg(HF_LOG_INFO, "webhooks: created key file %s (keep it with the database; "
                "without it no endpoint can be signed)", path);
    return rc;
}

int webhook_key_load(const char *path, int may_create,
                     unsigned char key[HF_SEAL_KEY_BYTES], char *err, size_t errlen)
{
    unsigned char extra;
    struct stat st;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!may_create) {
            snprintf(err, errlen, "webhook key file %s is missing, but the database has "
                     "webhook endpoints whose secrets were sealed with it: restore the "
                     "file (every node needs the same one) or point --webhook-key-file "
                     "at it", path);
            return -1;
        }
        if (create_key(path, err, errlen) != 0)
            return -1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot open webhook key file %s: %s", path, strerror(errno));
        return -1;
    }
    rc = fd_read_all(fd, key, HF_SEAL_KEY_BYTES);
    if (rc == 0 && read(fd, &extra, 1) != 0)
        rc = -1; /* longer than a key: not one of ours */
    if (rc == 0 && fstat(fd, &st) == 0 && (st.st_mode & 077))
        log_msg(HF_LOG_WARN, "webhooks: key file %s is readable by other users; "
                "chmod 600 it", path);
    close(fd);
    if (rc != 0) {
        token_wipe(key, HF_SEAL_KEY_BYTES);
        snprintf(err, errlen, "webhook key file %s must hold exactly %d bytes", path,
                 HF_SEAL_KEY_BYTES);
        return -1;
    }
    return 0;
}

void webhook_secret_new(const unsigned char key[HF_SEAL_KEY_BYTES],
                        struct webhook_endpoint *e,
                        char plain[HF_WEBHOOK_SECRET_CHARS + 1])
{
    _Static_assert(HF_WEBHOOK_SECRET_CHARS + HF_SEAL_OVERHEAD <= HF_SEALED_SECRET_MAX,
                   "sealed secret fits");
    memcpy(plain, "whsec_", 6);
    token_mint(plain + 6);
    token_seal(key, plain, HF_WEBHOOK_SECRET_CHARS, e->id, e->secret);
    e->secret_len = HF_WEBHOOK_SECRET_CHARS + HF_SEAL_OVERHEAD;
}

int webhook_secret_open(const unsigned char key[HF_SEAL_KEY_BYTES],
                        const struct webhook_endpoint *e,
                        char plain[HF_WEBHOOK_SECRET_CHARS + 1])
{
    if (e->secret_len != HF_WEBHOOK_SECRET_CHARS + HF_SEAL_OVERHEAD ||
        token_open(key, e->secret, e->secret_len, e->id, (unsigned char *)plain) != 0)
        return -1;
    plain[HF_WEBHOOK_SECRET_CHARS] = '\0';
    return 0;
}

int webhook_previous_secret_open(const unsigned char key[HF_SEAL_KEY_BYTES],
                                 const struct webhook_endpoint *e, long long now_ms,
                                 char plain[HF_WEBHOOK_SECRET_CHARS + 1])
{
    /* sealed to the endpoint id as the current one is: both are its own */
    if (e->previous_until_ms <= now_ms ||
        e->previous_secret_len != HF_WEBHOOK_SECRET_CHARS + HF_SEAL_OVERHEAD ||
        token_open(key, e->previous_secret, e->previous_secret_len, e->id,
                   (unsigned char *)plain) != 0)
        return -1;
    plain[HF_WEBHOOK_SECRET_CHARS] = '\0';
    return 0;
}

void webhook_sign_rolling(const char *secret, const char *previous, long long t,
                          const char *body, size_t len, char out[HF_ROLLING_SIGNATURE_MAX])
{
    char other[HF_SIGNATURE_MAX];

    webhook_sign(secret, t, body, len, out);
    if (previous) {
        webhook_sign(previous, t, body, len, other);
        /* the same t=, one more v1= */
        strcat(out, strchr(other, ','));
    }
}

void webhook_sign(const char *secret, long long t, const char *body, size_t len,
                  char out[HF_SIGNATURE_MAX])
{
    unsigned char mac[HF_HASH_BYTES];
    char hex[HF_HASH_HEX], prefix[24];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%lld.", t);

    token_hmac(secret, strlen(secret), prefix, plen, body, len, mac);
    token_hex(mac, sizeof mac, hex);
    snprintf(out, HF_SIGNATURE_MAX, "t=%lld,v1=%s", t, hex);
}
