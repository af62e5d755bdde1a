/* webhook_secret.c - server key file, sealed endpoint secrets, signatures. */
#define _POSIX_C_SOURCE 200809L
#include "webhook_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int read_all(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *buf, size_t n)
{
    size_t put = 0;

    while (put < n) {
        ssize_t r = write(fd, buf + put, n - put);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

/* Create path with a fresh key; O_EXCL so two processes starting together
 * cannot both write one (the loser reads the winner's). */
static int create_key(const char *path, char *err, size_t errlen)
{
    unsigned char key[HF_SEAL_KEY_BYTES];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), rc;

    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    token_random(key, sizeof key);
    rc = write_all(fd, key, sizeof key);
    token_wipe(key, sizeof key);
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write webhook key file %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    log_msg(HF_LOG_INFO, "webhooks: created key file %s (keep it with the database; "
            "without it no endpoint can be signed)", path);
    return 0;
}

int webhook_key_load(const char *path, unsigned char key[HF_SEAL_KEY_BYTES],
                     char *err, size_t errlen)
{
    unsigned char extra;
    struct stat st;
    int fd, rc;

    err[0] = '\0';
    if (create_key(path, err, errlen) != 0) {
        if (!*err)
            snprintf(err, errlen, "cannot create webhook key file %s: %s", path,
                     strerror(errno));
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open webhook key file %s: %s", path, strerror(errno));
        return -1;
    }
    rc = read_all(fd, key, HF_SEAL_KEY_BYTES);
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
