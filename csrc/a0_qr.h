/* QR code matrices over libqrencode, for enrollment screens (otpauth URIs). */
#ifndef A0_QR_H
#define A0_QR_H

#include <stddef.h>

enum { A0_QR_OK = 0, A0_QR_TOO_LARGE, A0_QR_INVALID, A0_QR_NOMEM };

/* Error correction levels, in the order of the QR specification's names L, M, Q, H. */
enum { A0_QR_ECC_L = 0, A0_QR_ECC_M, A0_QR_ECC_Q, A0_QR_ECC_H };

typedef struct a0_qr {
  int size;                /* modules per side, 21..177 */
  unsigned char *modules;  /* size * size bytes, row by row from the top left: '1' dark, '0' light */
} a0_qr;

/* Encodes text (no NUL byte, not empty) at the given level with the smallest version;
 * A0_QR_TOO_LARGE when no version holds it. On A0_QR_OK, release q with a0_qr_free. */
int a0_qr_encode(a0_qr *q, const char *text, size_t len, int level);  /* text need not end in NUL */
/* Wipes (the matrix encodes the text, which may hold a TOTP secret) and frees. */
void a0_qr_free(a0_qr *q);

#endif
