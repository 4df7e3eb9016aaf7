/* The libcurl side of one transfer: its easy handle and options, the body and header
 * callbacks, the mapping of libcurl's errors to ours, and the transfer's own buffers.
 * Runs on whichever thread drives libcurl; the lifecycle is a0_http.c's. Pure C. */
#include "a0_xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define A0_NAME(id, name) name,
static const char *const err_names[] = { A0_ERRORS(A0_NAME) };
#undef A0_NAME
const char *a0_err_name(int err) {
  return (err >= 0 && err < A0_NERR) ? err_names[err] : "unknown";
}

#define A0_WIRE(id, wire, field) wire,
static const char *const hdr_wire[] = { A0_HEADERS(A0_WIRE) };
#undef A0_WIRE
#define A0_FIELD(id, wire, field) field,
static const char *const hdr_field[] = { A0_HEADERS(A0_FIELD) };
#undef A0_FIELD
#define A0_WLEN(id, wire, field) sizeof(wire) - 1,
static const size_t hdr_wlen[] = { A0_HEADERS(A0_WLEN) };   /* every answer line is matched */
#undef A0_WLEN
const char *a0_header_field(int h) { return h >= 0 && h < A0_NHDR ? hdr_field[h] : NULL; }
const char *a0_header_wire(int h) { return h >= 0 && h < A0_NHDR ? hdr_wire[h] : NULL; }

a0_xfer *a0_xfer_new(void) { return calloc(1, sizeof(xfer)); }

/* Frees the header lines from h on, wiping them (they can carry a bearer token); the
 * static line is only unlinked. */
static void free_lines(xfer *x, struct curl_slist *h) {
  while (h != NULL) {
    struct curl_slist *next = h->next;
    h->next = NULL;
    if (h != &x->stat) {
      a0_wipe(h->data, strlen(h->data));
      curl_slist_free_all(h);   /* one node: libcurl's allocator frees what it allocated */
    }
    h = next;
  }
}

/* Wipes the per-request part (the fixed headers stay). */
void a0__wipe_request(xfer *x) {
  a0_buf_reset(&x->pub.url);
  a0_buf_reset(&x->pub.body);
  a0_buf_reset(&x->pub.resp);
  free_lines(x, x->keep ? x->keep->next : x->headers);
  if (x->keep) x->keep->next = NULL; else x->headers = NULL;
  a0__clear_results(x);
  x->pub.timeout_ms = 0;
  x->pub.method = NULL;
  x->pub.ud = NULL;
}

/* Empties the slots written since the last clear: a request touches two or three of them,
 * and clearing all 1.8 KB each time was a visible part of a request's cost. */
static void clear_headers(xfer *x) {
  for (unsigned set = x->hdr_set; set != 0; set &= set - 1) x->hdr[__builtin_ctz(set)][0] = '\0';
  x->hdr_set = 0;
}
_Static_assert(A0_NHDR <= 32, "hdr_set has a bit per slot");

void a0__clear_results(xfer *x) {
  /* a pooled transfer does not keep the pages of a large answer */
  if (x->pub.resp.cap >= A0_BUF_MAP) a0_buf_free(&x->pub.resp);
  a0_buf_reset(&x->pub.resp);
  if (x->hdr != NULL) clear_headers(x);
  x->pub.errmsg[0] = '\0';
  x->pub.err = A0_OK;
  x->pub.status = 0;
}

void a0_xfer_free(a0_xfer *px) {
  xfer *x = XF(px);
  if (x == NULL) return;
  a0__wipe_request(x);
  free_lines(x, x->headers);
  a0_buf_free(&x->pub.url);
  a0_buf_free(&x->pub.body);
  a0_buf_free(&x->pub.resp);
  if (x->easy != NULL) curl_easy_cleanup(x->easy);
  free(x->hdr);
  free(x);
}

void a0_xfer_keep_headers(a0_xfer *px) {
  struct curl_slist *h = XF(px)->headers;
  while (h != NULL && h->next != NULL) h = h->next;
  XF(px)->keep = h;
}

int a0_xfer_has_kept_headers(const a0_xfer *px) { return CXF(px)->keep != NULL; }

int a0_xfer_add_header(a0_xfer *px, const char *line) {
  struct curl_slist *h = curl_slist_append(XF(px)->headers, line);
  if (h == NULL) return -1;
  XF(px)->headers = h;
  return 0;
}

void a0_xfer_add_static_header(a0_xfer *px, const char *line) {
  xfer *x = XF(px);
  struct curl_slist **end = &x->headers;
  while (*end != NULL) end = &(*end)->next;
  memcpy(&x->stat.data, &line, sizeof line);   /* const dropped: libcurl only reads a header list */
  x->stat.next = NULL;
  *end = &x->stat;
}

const char *a0_xfer_header_line(const a0_xfer *px, int i) {
  const struct curl_slist *h = CXF(px)->headers;
  while (h != NULL && i-- > 0) h = h->next;
  return h != NULL && i < 0 ? h->data : NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (x->pub.resp.len + len > x->eng->o.max_body) {
    x->pub.err = A0_ETOOLARGE;
    return 0;   /* makes curl abort with CURLE_WRITE_ERROR */
  }
  if (a0_buf_add(&x->pub.resp, p, len) != 0) { x->pub.err = A0_ENOMEM; return 0; }
  return len;
}

const char *a0_xfer_header(const a0_xfer *px, int h) {
  const xfer *x = (const xfer *)px;
  return x->hdr != NULL && h >= 0 && h < A0_NHDR ? x->hdr[h] : "";
}

/* The captured headers whose name starts with the lowercase letter c, a bit each; the
 * compiler folds the comparisons with the names' first letters. */
#define A0_FROM(id, wire, field) | (wire[0] == c ? 1u << id : 0u)
static unsigned named_from(int c) { return 0u A0_HEADERS(A0_FROM); }
#undef A0_FROM

void a0_capture_header(a0_xfer *px, const char *p, size_t len) {
  xfer *x = XF(px);
  if (len == 0) return;
  /* 1.8 KB: allocated here, on the thread that runs libcurl, not with the transfer; so
   * starting one allocates nothing of 1 KB or more on the caller's thread (glibc
   * consolidates its fast bins, for a millisecond or more, on such a request) */
  if (x->hdr == NULL && (x->hdr = calloc(A0_NHDR, A0_HDR_MAX)) == NULL) return;
  /* a new status line (e.g. after 100 Continue) starts a fresh header set */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { clear_headers(x); return; }
  /* every answer line comes here: its first letter (any case) rules out most names */
  for (unsigned cand = named_from((unsigned char)p[0] | 0x20); cand != 0; cand &= cand - 1) {
    int h = __builtin_ctz(cand);
    size_t wl = hdr_wlen[h];
    if (len <= wl || p[wl] != ':' || strncasecmp(p, hdr_wire[h], wl) != 0) continue;
    const char *v = p + wl + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t vl = (size_t)(end - v);
    if (vl >= A0_HDR_MAX) vl = A0_HDR_MAX - 1;
    memcpy(x->hdr[h], v, vl);
    x->hdr[h][vl] = '\0';
    x->hdr_set |= 1u << h;
    break;
  }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  a0_capture_header(ud, p, size * n);
  return size * n;
}

static void set_error(xfer *x, CURLcode rc, const char *curl_msg) {
  if (x->pub.err == A0_OK) {
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: x->pub.err = A0_ETIMEOUT; break;
      case CURLE_COULDNT_CONNECT: x->pub.err = A0_ECONNECT; break;
      case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY: x->pub.err = A0_ERESOLVE; break;
      case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_ENGINE_INITFAILED: case CURLE_USE_SSL_FAILED:
        x->pub.err = A0_ETLS; break;
      case CURLE_WEIRD_SERVER_REPLY: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
      case CURLE_BAD_CONTENT_ENCODING: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
      case CURLE_RECV_ERROR: case CURLE_UNSUPPORTED_PROTOCOL:
        x->pub.err = A0_EBADRESP; break;
      case CURLE_OUT_OF_MEMORY: x->pub.err = A0_ENOMEM; break;
      default: x->pub.err = A0_ENETWORK;
    }
  }
  if (x->pub.err == A0_ETOOLARGE)
    snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "response larger than %zu bytes", x->eng->o.max_body);
  else if (curl_msg[0] == '\0')   /* curl_msg is x->pub.errmsg, curl's error buffer */
    snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "%s", curl_easy_strerror(rc));
}

/* Options that never change for a handle are set once, when it is created: a pooled
 * transfer then costs only the per-request options (URL, headers, method, body). */
static CURL *new_easy(a0_engine *e, xfer *x) {
  const a0_engine_opts *o = &e->o;
  CURL *c = curl_easy_init();
  if (c == NULL) return NULL;
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
  /* auth bodies are small: libcurl's 64 KiB default upload buffer per handle would cost
   * 64 MB with 1,000 requests in flight */
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
  if (o->ca_file != NULL) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_PRIVATE, x);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->pub.errmsg);
  return c;
}

/* The handle and its per-request options. Threaded engines run it on the I/O thread, so
 * that the caller's thread never runs libcurl code (creating a handle can cost 0.5 ms). */
int a0__prepare(a0_engine *e, xfer *x) {
  CURL *c = x->easy;
  const char *m = x->pub.method;
  const a0_buf *body = &x->pub.body;
  long timeout = x->pub.timeout_ms > 0 ? x->pub.timeout_ms : e->o.timeout_ms;
  if (c == NULL) {
    if ((c = x->easy = new_easy(e, x)) == NULL) return -1;
    x->set_timeout = -1;
    x->set_headers = NULL;
    x->set_custom = 0;
  }
  curl_easy_setopt(c, CURLOPT_URL, x->pub.url.data);
  if (timeout != x->set_timeout) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->set_timeout = timeout);
  /* libcurl reads the list through this pointer at each request: the same head, a new tail */
  if (x->headers != x->set_headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->set_headers = x->headers);
  if (x->set_custom) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
  x->set_custom = 0;
  if (m == NULL || strcmp(m, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(m, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data ? body->data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
    x->set_custom = 1;
    if (body->len > 0) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
    }
  }
  return 0;
}

/* Reads the outcome of a transfer libcurl has finished and detaches it; returns the
 * connections it opened. Touches only x and the multi handle: in threaded mode it runs
 * on the I/O thread, unlocked. */
long a0__finish(a0_engine *e, xfer *x, CURLcode rc) {
  long n = 0;
  CURL *c = x->easy;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->pub.status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
  if (rc != CURLE_OK) set_error(x, rc, x->pub.errmsg);
  else if (x->pub.status < 100) { x->pub.err = A0_EBADRESP; snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "no HTTP status"); }
  curl_multi_remove_handle(e->multi, c);
  /* the request body may hold a code or a secret: gone as soon as it was sent */
  a0_buf_reset(&x->pub.body);
  return n;
}
