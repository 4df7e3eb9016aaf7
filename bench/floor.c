/* The floor of bench/passwordless.lua: the least a C program over libcurl can do for the
 * same passwordless logins. One easy handle reused (keep-alive, one TLS connection), TLS
 * verified against the CA file, HTTP/2 over TLS like auth0.core; it parses nothing.
 * Like the Lua ways it runs N starts, then N token calls with the real codes, which it
 * reads between the two phases (untimed) from a FIFO the bench writes them to:
 *
 *   build-floor N START_URL TOKEN_URL CA_FILE READY_FIFO CODES_FIFO START_BODY TOKEN_BODY [HEADER...]
 *
 * Every "XXXXXXXX" in the bodies becomes the 8-digit iteration number (the bench's email
 * addresses), "######" in the token body the code (one 6-digit line per login on CODES_FIFO,
 * after "ready" was written to READY_FIFO). Prints one line of key=value figures; cpu_s is
 * getrusage(RUSAGE_SELF) user+sys over the two loops only.
 * Build: cc -O2 bench/floor.c -o build/bench-floor -lcurl */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <curl/curl.h>

#define MARK "XXXXXXXX"
#define MARK_LEN 8
#define CODE "######"
#define CODE_LEN 6
#define MAX_MARKS 8

typedef struct {
  char *buf;                /* the body sent, re-stamped each iteration */
  size_t len;
  size_t at[MAX_MARKS];     /* offsets of the marks in the template */
  int nmarks;
  long code_at;             /* offset of the code mark, or -1 */
} body;

static int body_init(body *b, const char *tmpl) {
  const char *p = tmpl;
  b->len = strlen(tmpl);
  b->buf = malloc(b->len + 1);
  if (b->buf == NULL) return -1;
  memcpy(b->buf, tmpl, b->len + 1);
  b->nmarks = 0;
  while ((p = strstr(p, MARK)) != NULL && b->nmarks < MAX_MARKS) {
    b->at[b->nmarks++] = (size_t)(p - tmpl);
    p += MARK_LEN;
  }
  p = strstr(tmpl, CODE);
  b->code_at = p ? (long)(p - tmpl) : -1;
  return 0;
}

static void body_stamp(body *b, const char *digits, const char *code) {
  for (int i = 0; i < b->nmarks; i++) memcpy(b->buf + b->at[i], digits, MARK_LEN);
  if (code != NULL && b->code_at >= 0) memcpy(b->buf + b->code_at, code, CODE_LEN);
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  *(size_t *)ud += size * n;
  return size * n;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One POST on the reused handle; returns the HTTP status (0 on a transport error). */
static long post(CURL *c, const char *url, body *b, long *connects) {
  long status = 0, n = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->buf);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)b->len);
  if (curl_easy_perform(c) != CURLE_OK) return 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
  *connects += n;
  return status;
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  body start, token;
  size_t bytes_in = 0;
  long connects = 0;
  int start_200 = 0, token_200 = 0, unexpected = 0;
  char err[CURL_ERROR_SIZE] = "";
  if (argc < 9) {
    fprintf(stderr, "usage: %s N START_URL TOKEN_URL CA_FILE READY_FIFO CODES_FIFO START_BODY TOKEN_BODY "
            "[HEADER...]\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[1]);
  if (n < 1 || n > 99999999 || body_init(&start, argv[7]) != 0 || body_init(&token, argv[8]) != 0 ||
      token.code_at < 0) {
    fprintf(stderr, "floor: bad arguments\n");
    return 2;
  }
  char (*codes)[CODE_LEN + 1] = calloc((size_t)n, sizeof *codes);
  if (codes == NULL) return 1;
  for (int i = 9; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *c = curl_easy_init();
  if (c == NULL) return 1;
  curl_easy_setopt(c, CURLOPT_CAINFO, argv[4]);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes_in);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_POST, 1L);

  char digits[16];   /* n <= 99999999: always 8 digits */
  double cpu0 = cpu_seconds(), wall0 = wall_seconds();
  for (int i = 1; i <= n; i++) {
    snprintf(digits, sizeof digits, "%08d", i);
    body_stamp(&start, digits, NULL);
    if (post(c, argv[2], &start, &connects) == 200) start_200++; else unexpected++;
  }
  double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;

  /* untimed: the bench reads the codes from the emulator's outbox and hands them over */
  FILE *ready = fopen(argv[5], "w");
  if (ready == NULL) return 1;
  fputs("ready\n", ready);
  fclose(ready);
  FILE *in = fopen(argv[6], "r");
  if (in == NULL) return 1;
  for (int i = 0; i < n; i++) {
    char line[64];
    if (fgets(line, sizeof line, in) == NULL || strlen(line) < CODE_LEN) { unexpected++; break; }
    memcpy(codes[i], line, CODE_LEN);
  }
  fclose(in);

  cpu0 = cpu_seconds();
  wall0 = wall_seconds();
  for (int i = 1; i <= n; i++) {
    snprintf(digits, sizeof digits, "%08d", i);
    body_stamp(&token, digits, codes[i - 1]);
    if (post(c, argv[3], &token, &connects) == 200) token_200++; else unexpected++;
  }
  cpu += cpu_seconds() - cpu0;
  wall += wall_seconds() - wall0;

  printf("iterations=%d cpu_s=%.6f wall_s=%.6f connects=%ld start_200=%d token_200=%d unexpected=%d "
         "bytes_in=%zu curl=%s\n", n, cpu, wall, connects, start_200, token_200, unexpected, bytes_in,
         curl_version_info(CURLVERSION_NOW)->version);
  if (unexpected > 0 && err[0] != '\0') fprintf(stderr, "floor: last curl error: %s\n", err);
  curl_easy_cleanup(c);
  curl_slist_free_all(headers);
  free(start.buf);
  free(token.buf);
  free(codes);
  curl_global_cleanup();
  return unexpected > 0 ? 1 : 0;
}
