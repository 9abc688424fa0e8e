#ifndef PC_CURL_SHIM_H
#define PC_CURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic, which Swift cannot
   call: one typed wrapper per argument kind. No logic lives here. */
static inline CURLcode pc_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_offset(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_write(CURL *h, CURLoption o, curl_write_callback f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode pc_curl_setopt_read(CURL *h, CURLoption o, curl_read_callback f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode pc_curl_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode pc_curl_getinfo_pointer(CURL *h, CURLINFO i, void **out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode pc_curl_getinfo_double(CURL *h, CURLINFO i, double *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLMcode pc_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

/* Compound macros are not imported; re-export them as constants. */
static const int PC_CURLPAUSE_CONT = CURLPAUSE_CONT;
static const int PC_CURLPAUSE_ALL = CURLPAUSE_ALL;
static const size_t PC_CURL_WRITEFUNC_PAUSE = CURL_WRITEFUNC_PAUSE;
static const size_t PC_CURL_READFUNC_PAUSE = CURL_READFUNC_PAUSE;
static const size_t PC_CURL_READFUNC_ABORT = CURL_READFUNC_ABORT;
static const long PC_CURL_GLOBAL_DEFAULT = CURL_GLOBAL_DEFAULT;
#endif
