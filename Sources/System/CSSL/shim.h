/* OpenSSL libssl (TLS) and the libcrypto parts it needs (keys, X.509, PEM), for the agent
 * channel. Function-like macros of the OpenSSL headers are invisible to Swift, so the ones
 * the channel calls are wrapped here as static inline functions with the dpm_ prefix. */
#ifndef DPM_CSSL_SHIM_H
#define DPM_CSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/crypto.h>

/* Pins a context to TLS 1.3 and nothing else (SSL_CTX_set_min/max_proto_version are macros). */
static inline int dpm_ssl_ctx_tls13_only(SSL_CTX *context) {
    return SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) == 1
        && SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) == 1;
}

/* Lets SSL_write return after writing part of a buffer and accept a retry from a moved
 * buffer: what a non-blocking writer with its own loop needs (SSL_CTX_set_mode is a macro). */
static inline void dpm_ssl_ctx_partial_writes(SSL_CTX *context) {
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* A new P-256 key pair (EVP_EC_gen is a macro over a variadic function). */
static inline EVP_PKEY *dpm_generate_p256_key(void) {
    return EVP_EC_gen("P-256");
}

/* The bytes held by a memory BIO (BIO_get_mem_data is a macro). */
static inline long dpm_bio_memory(BIO *bio, char **bytes) {
    return BIO_get_mem_data(bio, bytes);
}

#endif
