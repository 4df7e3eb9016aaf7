#include "a0_http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

struct a0_engine {
  CURLM *multi;
  a0_engine_opts o;
  char *ca_file;
  a0_xfer *done_head, *done_tail;
  int running;
  long connects;
};

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
const char *a0_header_field(int h) { return hdr_field[h]; }

static void global_init(void) {
  /* once per process; curl_global_init is reference counted and thread safe in 7.84+ */
  static int done = 0;
  if (!done) { curl_global_init(CURL_GLOBAL_DEFAULT); done = 1; }
}

a0_engine *a0_engine_new(const a0_engine_opts *o, char *err, size_t errlen) {
  a0_engine *e;
  global_init();
  e = calloc(1, sizeof *e);
  if (e == NULL) { snprintf(err, errlen, "out of memory"); return NULL; }
  e->o = *o;
  if (o->ca_file != NULL) {
    e->ca_file = strdup(o->ca_file);
    if (e->ca_file == NULL) { free(e); snprintf(err, errlen, "out of memory"); return NULL; }
  }
  e->o.ca_file = e->ca_file;
  e->multi = curl_multi_init();
  if (e->multi == NULL) {
    free(e->ca_file); free(e);
    snprintf(err, errlen, "curl_multi_init failed");
    return NULL;
  }
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
  return e;
}

void a0_engine_free(a0_engine *e) {
  if (e == NULL) return;
  curl_multi_cleanup(e->multi);
  free(e->ca_file);
  free(e);
}

a0_xfer *a0_xfer_new(void) { return calloc(1, sizeof(a0_xfer)); }

void a0_xfer_reset(a0_xfer *x) {
  a0_buf_reset(&x->url);
  a0_buf_reset(&x->body);
  a0_buf_reset(&x->resp);
  {
    /* per-request header lines can carry a bearer token */
    struct curl_slist *rest = x->keep ? x->keep->next : x->headers;
    for (struct curl_slist *h = rest; h != NULL; h = h->next) a0_wipe(h->data, strlen(h->data));
    curl_slist_free_all(rest);
    if (x->keep) x->keep->next = NULL; else x->headers = NULL;
  }
  memset(x->hdr, 0, sizeof x->hdr);
  x->errmsg[0] = '\0';
  x->state = A0_X_IDLE;
  x->err = A0_OK;
  x->status = 0;
  x->timeout_ms = 0;
  x->method = NULL;
  x->next_done = NULL;
  x->in_done = 0;
  x->ud = NULL;
}

void a0_xfer_free(a0_xfer *x) {
  if (x == NULL) return;
  a0_xfer_reset(x);
  curl_slist_free_all(x->headers);
  x->headers = x->keep = NULL;
  a0_buf_free(&x->url);
  a0_buf_free(&x->body);
  a0_buf_free(&x->resp);
  if (x->easy != NULL) curl_easy_cleanup(x->easy);
  free(x);
}

void a0_xfer_keep_headers(a0_xfer *x) {
  struct curl_slist *h = x->headers;
  while (h != NULL && h->next != NULL) h = h->next;
  x->keep = h;
}

int a0_xfer_add_header(a0_xfer *x, const char *line) {
  struct curl_slist *h = curl_slist_append(x->headers, line);
  if (h == NULL) return -1;
  x->headers = h;
  return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  a0_xfer *x = ud;
  size_t len = size * n;
  if (x->resp.len + len > x->eng->o.max_body) {
    x->err = A0_ETOOLARGE;
    return 0;   /* makes curl abort with CURLE_WRITE_ERROR */
  }
  if (a0_buf_add(&x->resp, p, len) != 0) { x->err = A0_ENOMEM; return 0; }
  return len;
}

void a0_capture_header(a0_xfer *x, const char *p, size_t len) {
  /* a new status line (e.g. after 100 Continue) starts a fresh header set */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { memset(x->hdr, 0, sizeof x->hdr); return; }
  for (int h = 0; h < A0_NHDR; h++) {
    size_t wl = strlen(hdr_wire[h]);
    if (len > wl && p[wl] == ':' && strncasecmp(p, hdr_wire[h], wl) == 0) {
      const char *v = p + wl + 1, *end = p + len;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
      size_t vl = (size_t)(end - v);
      if (vl >= A0_HDR_MAX) vl = A0_HDR_MAX - 1;
      memcpy(x->hdr[h], v, vl);
      x->hdr[h][vl] = '\0';
      break;
    }
  }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  a0_capture_header(ud, p, size * n);
  return size * n;
}

static void set_error(a0_xfer *x, CURLcode rc, const char *curl_msg) {
  if (x->err == A0_OK) {
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: x->err = A0_ETIMEOUT; break;
      case CURLE_COULDNT_CONNECT: x->err = A0_ECONNECT; break;
      case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY: x->err = A0_ERESOLVE; break;
      case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_ENGINE_INITFAILED: case CURLE_USE_SSL_FAILED:
        x->err = A0_ETLS; break;
      case CURLE_WEIRD_SERVER_REPLY: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
      case CURLE_BAD_CONTENT_ENCODING: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
      case CURLE_RECV_ERROR: case CURLE_UNSUPPORTED_PROTOCOL:
        x->err = A0_EBADRESP; break;
      case CURLE_OUT_OF_MEMORY: x->err = A0_ENOMEM; break;
      default: x->err = A0_ENETWORK;
    }
  }
  if (x->err == A0_ETOOLARGE)
    snprintf(x->errmsg, sizeof x->errmsg, "response larger than %zu bytes", x->eng->o.max_body);
  else if (curl_msg[0] == '\0')   /* curl_msg is x->errmsg, curl's error buffer */
    snprintf(x->errmsg, sizeof x->errmsg, "%s", curl_easy_strerror(rc));
}

/* Options that never change for a handle are set once, when it is created: a pooled
 * transfer then costs only the per-request options (URL, headers, method, body). */
static CURL *new_easy(a0_engine *e, a0_xfer *x) {
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
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errmsg);
  return c;
}

int a0_xfer_start(a0_engine *e, a0_xfer *x) {
  CURL *c = x->easy;
  /* a handle is bound to the engine whose options it carries */
  if (c != NULL && x->eng != e) { curl_easy_cleanup(c); c = x->easy = NULL; }
  if (c == NULL && (c = x->easy = new_easy(e, x)) == NULL) return -1;
  if (a0_buf_cstr(&x->url) != 0) return -1;
  x->eng = e;
  x->state = A0_X_RUNNING;
  x->err = A0_OK;
  x->status = 0;
  x->errmsg[0] = '\0';
  a0_buf_reset(&x->resp);
  memset(x->hdr, 0, sizeof x->hdr);
  curl_easy_setopt(c, CURLOPT_URL, x->url.data);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms > 0 ? x->timeout_ms : e->o.timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
  if (x->method == NULL || strcmp(x->method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(x->method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data ? x->body.data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->body.len);
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    if (x->body.len > 0) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->body.len);
    }
  }
  if (curl_multi_add_handle(e->multi, c) != CURLM_OK) { x->state = A0_X_IDLE; return -1; }
  e->running++;
  return 0;
}

static void push_done(a0_engine *e, a0_xfer *x) {
  x->next_done = NULL;
  x->in_done = 1;
  if (e->done_tail) e->done_tail->next_done = x; else e->done_head = x;
  e->done_tail = x;
}

static void finish(a0_engine *e, a0_xfer *x, CURLcode rc) {
  long n = 0;
  CURL *c = x->easy;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
  e->connects += n;
  if (rc != CURLE_OK) set_error(x, rc, x->errmsg);
  else if (x->status < 100) { x->err = A0_EBADRESP; snprintf(x->errmsg, sizeof x->errmsg, "no HTTP status"); }
  curl_multi_remove_handle(e->multi, c);
  e->running--;
  /* the request body may hold a code or a secret: gone as soon as it was sent */
  a0_buf_reset(&x->body);
  x->state = A0_X_DONE;
}

static void collect(a0_engine *e) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    a0_xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    CURLcode rc = m->data.result;
    finish(e, x, rc);
    push_done(e, x);
  }
}

int a0_engine_run(a0_engine *e, int timeout_ms) {
  int still = 0;
  if (timeout_ms > 0 && curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL) != CURLM_OK) return -1;
  if (curl_multi_perform(e->multi, &still) != CURLM_OK) return -1;
  collect(e);
  return e->running;
}

a0_xfer *a0_engine_pop_done(a0_engine *e) {
  a0_xfer *x = e->done_head;
  if (x == NULL) return NULL;
  e->done_head = x->next_done;
  if (e->done_head == NULL) e->done_tail = NULL;
  x->next_done = NULL;
  x->in_done = 0;
  return x;
}

static void unlink_done(a0_engine *e, a0_xfer *x) {
  a0_xfer **pp = &e->done_head, *prev = NULL;
  while (*pp != NULL && *pp != x) { prev = *pp; pp = &(*pp)->next_done; }
  if (*pp == NULL) return;
  *pp = x->next_done;
  if (e->done_tail == x) e->done_tail = prev;
  x->next_done = NULL;
  x->in_done = 0;
}

void a0_engine_wait(a0_engine *e, a0_xfer *x) {
  while (x->state == A0_X_RUNNING) {
    if (a0_engine_run(e, 0) < 0) break;
    if (x->state != A0_X_RUNNING) break;
    if (curl_multi_poll(e->multi, NULL, 0, 1000, NULL) != CURLM_OK) break;
  }
  if (x->state == A0_X_RUNNING) {   /* multi failure: do not leave it half attached */
    a0_engine_cancel(e, x);
    x->err = A0_ENETWORK;
    snprintf(x->errmsg, sizeof x->errmsg, "curl multi interface failed");
  }
  if (x->in_done) unlink_done(e, x);
}

void a0_engine_cancel(a0_engine *e, a0_xfer *x) {
  if (x->state == A0_X_RUNNING) {
    curl_multi_remove_handle(e->multi, x->easy);
    e->running--;
    a0_buf_reset(&x->body);
  }
  if (x->in_done) unlink_done(e, x);
  x->state = A0_X_DONE;
  x->err = A0_ECANCELLED;
  snprintf(x->errmsg, sizeof x->errmsg, "request cancelled");
}

void a0_engine_wakeup(a0_engine *e) { curl_multi_wakeup(e->multi); }
long a0_engine_connects(const a0_engine *e) { return e->connects; }
int a0_engine_running(const a0_engine *e) { return e->running; }
