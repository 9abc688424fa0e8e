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
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

/* OPENSSL_free is a macro. */
static inline void pc_openssl_free(void *p) { OPENSSL_free(p); }

/* BIO_new_mem_buf takes `const void *`; the length is an int. */
static inline BIO *pc_bio_from_bytes(const void *bytes, int length) { return BIO_new_mem_buf(bytes, length); }
/* Compound macros are not imported. */
static const int PC_EVP_PKEY_PUBLIC_KEY = EVP_PKEY_PUBLIC_KEY;
#endif
