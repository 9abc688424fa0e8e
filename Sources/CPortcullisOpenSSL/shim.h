#ifndef PC_OPENSSL_SHIM_H
#define PC_OPENSSL_SHIM_H
/* Refuse the deprecated 1.1 API at compile time. */
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>

/* OPENSSL_free is a macro. */
static inline void pc_openssl_free(void *p) { OPENSSL_free(p); }
#endif
