/* The floor of bench/passwordless.lua: the least a C program over libcurl can do for the
 * same passwordless logins. One easy handle reused (keep-alive, one TLS connection), TLS
 * verified against the CA file, HTTP/2 over TLS like auth0.core; it parses nothing.
 * It does what the bench asks, chunk by chunk, so that the bench can run it and our client in
 * small alternating chunks that share the machine's load (the CPU of each chunk is the figure):
 *
 *   build-floor START_URL TOKEN_URL CA_FILE CMD_FIFO REPLY_FIFO START_BODY TOKEN_BODY [HEADER...]
 *
 * Commands, one line each on CMD_FIFO; each is answered by one line on REPLY_FIFO:
 *   start A B            starts for the users A..B           -> "cpu_s=... wall_s=... unexpected=..."
 *   login A B            then B-A+1 lines of 6-digit codes; the token calls for A..B (as start)
 *   quit                 -> the totals: connects, bytes_in, unexpected, curl version; then exits
 * Every "XXXXXXXX" in the bodies becomes the 8-digit user number (the bench's email
 * addresses), "######" in the token body the code. cpu_s is getrusage(RUSAGE_SELF) user+sys
 * over the chunk's requests only (reading the command and the codes is not part of it).
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

/* One chunk of starts (code == NULL) or token calls: the replied figures. */
static void chunk(CURL *c, const char *url, body *b, int a, int z, char (*codes)[CODE_LEN + 1], FILE *reply,
                  long *connects, long *unexpected) {
  /* the users' numbers are test data, made before the clock starts, as the Lua ways make
   * their addresses (user numbers have 8 digits) */
  char (*digits)[16] = calloc((size_t)(z - a + 1), sizeof *digits);
  long bad = 0;
  if (digits == NULL) exit(1);
  for (int i = a; i <= z; i++) snprintf(digits[i - a], sizeof digits[0], "%08d", i);
  double cpu0 = cpu_seconds(), wall0 = wall_seconds();
  for (int i = a; i <= z; i++) {
    body_stamp(b, digits[i - a], codes != NULL ? codes[i - a] : NULL);
    if (post(c, url, b, connects) != 200) bad++;
  }
  double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
  free(digits);
  *unexpected += bad;
  fprintf(reply, "cpu_s=%.6f wall_s=%.6f unexpected=%ld\n", cpu, wall, bad);
  fflush(reply);
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  body start, token;
  size_t bytes_in = 0;
  long connects = 0, unexpected = 0;
  char err[CURL_ERROR_SIZE] = "", line[128];
  if (argc < 8) {
    fprintf(stderr, "usage: %s START_URL TOKEN_URL CA_FILE CMD_FIFO REPLY_FIFO START_BODY TOKEN_BODY [HEADER...]\n",
            argv[0]);
    return 2;
  }
  if (body_init(&start, argv[6]) != 0 || body_init(&token, argv[7]) != 0 || token.code_at < 0) {
    fprintf(stderr, "floor: bad arguments\n");
    return 2;
  }
  for (int i = 8; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *c = curl_easy_init();
  if (c == NULL) return 1;
  curl_easy_setopt(c, CURLOPT_CAINFO, argv[3]);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bytes_in);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c, CURLOPT_POST, 1L);

  FILE *cmd = fopen(argv[4], "r"), *reply = fopen(argv[5], "w");
  if (cmd == NULL || reply == NULL) return 1;
  while (fgets(line, sizeof line, cmd) != NULL) {
    int a, z;
    if (sscanf(line, "start %d %d", &a, &z) == 2 && a >= 1 && z >= a && z <= 99999999) {
      chunk(c, argv[1], &start, a, z, NULL, reply, &connects, &unexpected);
    } else if (sscanf(line, "login %d %d", &a, &z) == 2 && a >= 1 && z >= a && z <= 99999999) {
      char (*codes)[CODE_LEN + 1] = calloc((size_t)(z - a + 1), sizeof *codes);
      if (codes == NULL) return 1;
      for (int i = 0; i <= z - a; i++) {   /* untimed, like the bench's reading of the codes */
        if (fgets(line, sizeof line, cmd) == NULL || strlen(line) < CODE_LEN) return 1;
        memcpy(codes[i], line, CODE_LEN);
      }
      chunk(c, argv[2], &token, a, z, codes, reply, &connects, &unexpected);
      free(codes);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    } else {
      fprintf(stderr, "floor: bad command: %s", line);
      return 2;
    }
  }
  fprintf(reply, "connects=%ld bytes_in=%zu unexpected=%ld curl=%s\n", connects, bytes_in, unexpected,
          curl_version_info(CURLVERSION_NOW)->version);
  fclose(reply);
  fclose(cmd);
  if (unexpected > 0 && err[0] != '\0') fprintf(stderr, "floor: last curl error: %s\n", err);
  curl_easy_cleanup(c);
  curl_slist_free_all(headers);
  free(start.buf);
  free(token.buf);
  curl_global_cleanup();
  return unexpected > 0 ? 1 : 0;
}
