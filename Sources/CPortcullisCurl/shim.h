#ifndef PC_CURL_SHIM_H
#define PC_CURL_SHIM_H
#include <curl/curl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are variadic, which Swift cannot
   call: one typed wrapper per argument kind. No logic lives here. */
static inline CURLcode pc_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_offset(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode pc_curl_setopt_write(CURL *h, CURLoption o, curl_write_callback f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode pc_curl_setopt_opensocket(CURL *h, curl_opensocket_callback f) { return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, f); }
static inline CURLcode pc_curl_setopt_closesocket(CURL *h, curl_closesocket_callback f) { return curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, f); }
static inline CURLcode pc_curl_setopt_read(CURL *h, CURLoption o, curl_read_callback f) { return curl_easy_setopt(h, o, f); }
static inline CURLcode pc_curl_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode pc_curl_getinfo_pointer(CURL *h, CURLINFO i, void **out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode pc_curl_getinfo_double(CURL *h, CURLINFO i, double *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLMcode pc_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
static inline CURLMcode pc_curl_multi_setopt_pointer(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }
static inline CURLMcode pc_curl_multi_setopt_socket(CURLM *m, curl_socket_callback f) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f); }
static inline CURLMcode pc_curl_multi_setopt_timer(CURLM *m, curl_multi_timer_callback f) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f); }

/* epoll for the multi socket interface. struct epoll_event is packed on x86_64, which Swift
   does not lay out the same way: these take and return plain integers. */
static inline int pc_epoll_control(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event event = { .events = events, .data = { .fd = fd } };
    return epoll_ctl(epfd, op, fd, &event);
}
/* Waits like epoll_wait and writes each ready descriptor and its events to `fds` and `events`. */
static inline int pc_epoll_wait(int epfd, int *fds, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) { fds[i] = ready[i].data.fd; events[i] = ready[i].events; }
    return count;
}

/* Compound macros are not imported; re-export them as constants. */
static const int PC_CURLPAUSE_CONT = CURLPAUSE_CONT;
static const int PC_CURLPAUSE_ALL = CURLPAUSE_ALL;
static const size_t PC_CURL_WRITEFUNC_PAUSE = CURL_WRITEFUNC_PAUSE;
static const size_t PC_CURL_READFUNC_PAUSE = CURL_READFUNC_PAUSE;
static const size_t PC_CURL_READFUNC_ABORT = CURL_READFUNC_ABORT;
static const long PC_CURL_GLOBAL_DEFAULT = CURL_GLOBAL_DEFAULT;
static const curl_socket_t PC_CURL_SOCKET_TIMEOUT = CURL_SOCKET_TIMEOUT;
static const int PC_CURL_POLL_IN = CURL_POLL_IN;
static const int PC_CURL_POLL_OUT = CURL_POLL_OUT;
static const int PC_CURL_POLL_INOUT = CURL_POLL_INOUT;
static const int PC_CURL_POLL_REMOVE = CURL_POLL_REMOVE;
static const int PC_CURL_CSELECT_IN = CURL_CSELECT_IN;
static const int PC_CURL_CSELECT_OUT = CURL_CSELECT_OUT;
static const int PC_CURL_CSELECT_ERR = CURL_CSELECT_ERR;
static const uint32_t PC_EPOLLIN = EPOLLIN;
static const uint32_t PC_EPOLLOUT = EPOLLOUT;
static const uint32_t PC_EPOLLERR = EPOLLERR;
static const uint32_t PC_EPOLLHUP = EPOLLHUP;
static const int PC_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
static const int PC_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
static const int PC_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
#endif
