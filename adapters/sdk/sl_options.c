/*  sl_options - the public options calls (sl_options_init,
 *  sl_options_check, sl_cert_create) and the checks sl_client_new runs on
 *  the options and keys: defaults for zero fields, the server key, the
 *  client's certificate or key pair. Any thread; no state. Opens no socket;
 *  the only file it reads or writes is a certificate. The reason for a
 *  refusal goes into the caller's err/errlen buffer (sl_client_new's
 *  callers get it from sl_options_check).  */
#include "sl_options.h"
#include "sl_util.h"
#include <sodium.h>
#include <string.h>

void sl_options_init(sl_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->endpoint = SL_DEFAULT_ENDPOINT;
    opts->name = "libsluice";
    opts->producer_id_file = NULL;
    opts->linger_ms = 1;
    opts->max_batch = 1000;
    opts->max_batch_bytes = 1024 * 1024;
    opts->max_unacked = 100000;
    opts->block_ms = 30000;
    opts->heartbeat_ms = 1000;
    opts->dead_after_ms = 5000;
    opts->connect_timeout_ms = 30000;
}

int sli_options_resolve(const sl_options_t *in, sl_options_t *o, char *err,
                        size_t errlen)
{
    sl_options_t d;
    sl_options_init(&d);
    *o = in ? *in : d;
    /* Zero where zero means nothing useful: take the default, so a
     * designated initializer with a few fields works too. */
    if (!o->endpoint)
        o->endpoint = d.endpoint;
    if (!o->name)
        o->name = d.name;
    if (!o->max_batch)
        o->max_batch = d.max_batch;
    if (!o->max_batch_bytes)
        o->max_batch_bytes = d.max_batch_bytes;
    if (!o->max_unacked)
        o->max_unacked = d.max_unacked;
    if (!o->heartbeat_ms)
        o->heartbeat_ms = d.heartbeat_ms;
    if (!o->dead_after_ms)
        o->dead_after_ms = d.dead_after_ms;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = d.connect_timeout_ms;
    if (o->linger_ms < 0 || o->max_batch < 0 || o->max_unacked < 0
        || o->block_ms < 0 || o->heartbeat_ms < 0 || o->dead_after_ms < 0
        || o->connect_timeout_ms < 0) {
        slc_errf(err, errlen, "a negative time or count in the options");
        return SL_EINVAL;
    }
    if (o->dead_after_ms <= o->heartbeat_ms) {
        slc_errf(err, errlen, "dead_after_ms must exceed heartbeat_ms");
        return SL_EINVAL;
    }
    if (!*o->endpoint) {
        slc_errf(err, errlen, "empty endpoint");
        return SL_EINVAL;
    }
    return 0;
}

/* The keys OPTS ask for, read and checked. */

int sli_keys_read(const sl_options_t *o, sli_keys_t *k, char *err, size_t errlen)
{
    int rc = 0;
    char why[SLI_ERROR_MAX];
    bool pair = o->public_key || o->secret_key;
    memset(k, 0, sizeof *k);
    if (!o->server_key) {
        if (o->cert || pair) {
            slc_errf(err, errlen, "a client key pair needs server_key (the "
                  "broker's public key)");
            rc = SL_EINVAL;
        }
        goto fail;              /* plain text */
    }
    rc = slc_key_parse(o->server_key, k->server_key, why, sizeof why);
    if (rc) {
        slc_errf(err, errlen, "server_key: %s", why);
        goto fail;
    }
    if (o->cert && pair) {
        slc_errf(err, errlen, "give cert or public_key+secret_key, not both");
        rc = SL_EINVAL;
        goto fail;
    }
    if (!o->cert && !pair) {
        slc_errf(err, errlen, "a client key pair is needed (cert or "
              "public_key+secret_key)");
        rc = SL_EINVAL;
        goto fail;
    }
    if (o->cert) {
        rc = slc_cert_load(o->cert, &k->client, err, errlen);
        if (rc == SL_ENOTFOUND)
            rc = SL_EINVAL;     /* a bad option, like a bad key */
        if (rc)
            goto fail;
        if (!k->client.has_secret) {
            slc_errf(err, errlen, "%s holds no secret key (a .pub file?): "
                  "the client needs its certificate", o->cert);
            rc = SL_EINVAL;
            goto fail;
        }
    }
    else {
        if (!o->public_key || !o->secret_key) {
            slc_errf(err, errlen, "public_key and secret_key go together");
            rc = SL_EINVAL;
            goto fail;
        }
        rc = slc_key_decode(o->public_key, k->client.public_key, why, sizeof why);
        if (rc) {
            slc_errf(err, errlen, "public_key: %s", why);
            goto fail;
        }
        /* No detail: the reason could quote a character of the secret. */
        rc = slc_key_decode(o->secret_key, k->client.secret_key, NULL, 0);
        if (rc) {
            slc_errf(err, errlen, "secret_key is not a key of %d Z85 "
                  "characters", SLC_Z85_LEN);
            goto fail;
        }
        k->client.has_secret = true;
        rc = slc_cert_check(&k->client, NULL, 0);
        if (rc) {
            slc_errf(err, errlen, "secret_key does not belong to public_key");
            goto fail;
        }
    }
    k->curve = true;
fail:
    sodium_memzero(why, sizeof why);
    if (rc)
        sodium_memzero(k, sizeof *k);
    return rc;
}


void sli_keys_wipe(sli_keys_t *k)
{
    sodium_memzero(k, sizeof *k);
}

int sl_options_check(const sl_options_t *opts, char *err, size_t errlen)
{
    sl_options_t o;
    sli_keys_t k;
    slc_errf(err, errlen, "%s", "");
    int rc = sli_options_resolve(opts, &o, err, errlen);
    if (rc == 0)
        rc = sli_keys_read(&o, &k, err, errlen);
    sli_keys_wipe(&k);
    return rc;
}


int sl_cert_create(const char *name, const char *cert_path,
                   const char *pub_path, char public_key[41], char *err,
                   size_t errlen)
{
    slc_cert_t cert;
    slc_errf(err, errlen, "%s", "");
    int rc = slc_cert_generate(&cert);
    if (rc) {
        slc_errf(err, errlen, "cannot generate a key pair (libsodium)");
        goto fail;
    }
    rc = slc_cert_save(&cert, name, cert_path, pub_path, err, errlen);
    if (rc)
        goto fail;
    if (public_key)
        slc_key_z85(cert.public_key, public_key);
fail:
    slc_cert_wipe(&cert);
    return rc;
}
