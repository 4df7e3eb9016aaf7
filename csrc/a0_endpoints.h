/* The protocol's endpoint table: method, path, body, grant type and the body fields
 * each call may carry. Pure data, shared by the binding and the C tests. */
#ifndef A0_ENDPOINTS_H
#define A0_ENDPOINTS_H

enum { A0_F_REQ = 1, A0_F_OBJ = 2, A0_F_ARR = 4 };
enum { A0_BODY_NONE, A0_BODY_JSON, A0_BODY_RAW };  /* RAW: opts.body, a JSON text */
enum { A0_AUTH_NONE, A0_AUTH_BEARER };

typedef struct { const char *name; int flags; } a0_field;

typedef struct {
  const char *name;
  const char *method;
  const char *path;       /* a trailing '/' means opts.path_arg is appended: percent-encoded
                             as one segment, or verbatim for the emulator's control routes */
  int body;
  int auth;
  const char *grant_type; /* added to the body as grant_type when not NULL */
  const a0_field *fields; /* NULL-terminated */
} a0_endpoint;

#define A0_G "http://auth0.com/oauth/grant-type/"
#define CLIENT {"client_id", A0_F_REQ}, {"client_secret", 0}

static const a0_field f_pwl_start[] = {
  CLIENT, {"connection", A0_F_REQ}, {"email", 0}, {"phone_number", 0}, {"send", 0},
  {"authParams", A0_F_OBJ}, {NULL, 0} };
static const a0_field f_pwl_login[] = {
  CLIENT, {"username", A0_F_REQ}, {"realm", A0_F_REQ}, {"otp", A0_F_REQ}, {"audience", 0},
  {"scope", 0}, {NULL, 0} };
static const a0_field f_refresh[] = {
  CLIENT, {"refresh_token", A0_F_REQ}, {"scope", 0}, {"audience", 0}, {NULL, 0} };
static const a0_field f_revoke[] = { CLIENT, {"token", A0_F_REQ}, {NULL, 0} };
static const a0_field f_associate[] = {
  {"client_id", 0}, {"client_secret", 0}, {"authenticator_types", A0_F_REQ | A0_F_ARR},
  {"oob_channels", A0_F_ARR}, {"phone_number", 0}, {"email", 0}, {NULL, 0} };
static const a0_field f_challenge[] = {
  CLIENT, {"mfa_token", A0_F_REQ}, {"challenge_type", 0}, {"authenticator_id", 0}, {NULL, 0} };
static const a0_field f_mfa_otp[] = { CLIENT, {"mfa_token", A0_F_REQ}, {"otp", A0_F_REQ}, {NULL, 0} };
static const a0_field f_mfa_oob[] = {
  CLIENT, {"mfa_token", A0_F_REQ}, {"oob_code", A0_F_REQ}, {"binding_code", 0}, {NULL, 0} };
static const a0_field f_mfa_rc[] = {
  CLIENT, {"mfa_token", A0_F_REQ}, {"recovery_code", A0_F_REQ}, {NULL, 0} };
static const a0_field f_none[] = { {NULL, 0} };

static const a0_endpoint a0_endpoints[] = {
  {"passwordless_start", "POST", "/passwordless/start", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_pwl_start},
  {"passwordless_login", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "passwordless/otp", f_pwl_login},
  {"refresh", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, "refresh_token", f_refresh},
  {"revoke", "POST", "/oauth/revoke", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_revoke},
  {"userinfo", "GET", "/userinfo", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none},
  {"mfa_authenticators", "GET", "/mfa/authenticators", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none},
  {"mfa_delete_authenticator", "DELETE", "/mfa/authenticators/", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none},
  {"mfa_associate", "POST", "/mfa/associate", A0_BODY_JSON, A0_AUTH_BEARER, NULL, f_associate},
  {"mfa_challenge", "POST", "/mfa/challenge", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_challenge},
  {"mfa_otp", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-otp", f_mfa_otp},
  {"mfa_oob", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-oob", f_mfa_oob},
  {"mfa_recovery_code", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-recovery-code", f_mfa_rc},
  {"jwks", "GET", "/.well-known/jwks.json", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none},
  {"openid_configuration", "GET", "/.well-known/openid-configuration", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none},
  /* the bundled emulator's control API (tests and demos): verbatim sub-path, raw JSON body */
  {"control_get", "GET", "/__emulator/", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none},
  {"control_post", "POST", "/__emulator/", A0_BODY_RAW, A0_AUTH_NONE, NULL, f_none},
  {"control_delete", "DELETE", "/__emulator/", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none},
  {NULL, NULL, NULL, 0, 0, NULL, NULL}
};

#undef CLIENT
#endif
