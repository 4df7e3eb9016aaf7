/* QR code matrices over libqrencode: the smallest version that holds the text, mixed
 * numeric/alphanumeric/8-bit segments, one byte per module. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <qrencode.h>

#include "a0_buf.h"
#include "a0_qr.h"

static const QRecLevel levels[] = { QR_ECLEVEL_L, QR_ECLEVEL_M, QR_ECLEVEL_Q, QR_ECLEVEL_H };

int a0_qr_encode(a0_qr *q, const char *text, size_t len, int level) {
  q->size = 0;
  q->modules = NULL;
  if (len == 0 || memchr(text, '\0', len) != NULL || level < A0_QR_ECC_L || level > A0_QR_ECC_H) return A0_QR_INVALID;
  /* version 40 holds at most 2953 bytes (7089 digits): anything longer never fits, and
   * checking here spares libqrencode's allocations for a text of any size */
  if (len > 7089) return A0_QR_TOO_LARGE;
  /* libqrencode reads up to a NUL: a terminated copy (wiped after, it may hold a secret)
   * makes len the length, whatever follows text */
  a0_buf z = {0};
  if (a0_buf_add(&z, text, len) != 0 || a0_buf_cstr(&z) != 0) {
    a0_buf_free(&z);
    return A0_QR_NOMEM;
  }
  errno = 0;
  /* version 0: the smallest that fits; case-sensitive, so lowercase stays 8-bit */
  QRcode *c = QRcode_encodeString(z.data, 0, levels[level], QR_MODE_8, 1);
  int err = errno;
  a0_buf_free(&z);
  if (c == NULL) return err == ERANGE ? A0_QR_TOO_LARGE : err == ENOMEM ? A0_QR_NOMEM : A0_QR_INVALID;
  size_t n = (size_t)c->width * (size_t)c->width;
  q->modules = malloc(n);
  if (q->modules == NULL) {
    a0_wipe(c->data, n);
    QRcode_free(c);
    return A0_QR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) q->modules[i] = (c->data[i] & 1) ? '1' : '0';
  q->size = c->width;
  a0_wipe(c->data, n);
  QRcode_free(c);
  return A0_QR_OK;
}

void a0_qr_free(a0_qr *q) {
  if (q->modules != NULL) {
    a0_wipe(q->modules, (size_t)q->size * (size_t)q->size);
    free(q->modules);
  }
  q->modules = NULL;
  q->size = 0;
}
