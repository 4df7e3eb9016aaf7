/* The protocol's endpoint table: method, path, body, grant type and the body fields
 * each call may carry. Pure data, shared by the binding and the C tests. */
#ifndef A0_ENDPOINTS_H
#define A0_ENDPOINTS_H

enum { A0_F_REQ = 1, A0_F_OBJ = 2, A0_F_ARR = 4 };
enum { A0_BODY_NONE, A0_BODY_JSON, A0_BODY_RAW };  /* RAW: opts.body, a JSON text */
enum { A0_AUTH_NONE, A0_AUTH_BEARER };

/* pub: the name the public API gives the field where it differs (errors name it), or NULL */
typedef struct { const char *name; int flags; const char *pub; } a0_field;

typedef struct {
  const char *name;
  const char *method;
  const char *path;       /* a trailing '/' means opts.path_arg is appended: percent-encoded
                             as one segment, or verbatim (registered endpoints may ask) */
  int body;
  int auth;
  const char *grant_type; /* added to the body as grant_type when not NULL */
  const a0_field *fields; /* NULL-terminated */
  int verbatim;           /* path_arg is a sub-path, appended as it is (no CR/LF, space, ? or #) */
} a0_endpoint;

#define A0_G "http://auth0.com/oauth/grant-type/"
#define CLIENT {"client_id", A0_F_REQ, NULL}, {"client_secret", 0, NULL}

static const a0_field f_pwl_start[] = {
  CLIENT, {"connection", A0_F_REQ, NULL}, {"email", 0, NULL}, {"phone_number", 0, NULL}, {"send", 0, NULL},
  {"authParams", A0_F_OBJ, "auth_params"}, {NULL, 0, NULL} };
static const a0_field f_pwl_login[] = {
  CLIENT, {"username", A0_F_REQ, NULL}, {"realm", A0_F_REQ, NULL}, {"otp", A0_F_REQ, NULL}, {"audience", 0, NULL},
  {"scope", 0, NULL}, {NULL, 0, NULL} };
static const a0_field f_refresh[] = {
  CLIENT, {"refresh_token", A0_F_REQ, NULL}, {"scope", 0, NULL}, {"audience", 0, NULL}, {NULL, 0, NULL} };
static const a0_field f_revoke[] = { CLIENT, {"token", A0_F_REQ, "refresh_token"}, {NULL, 0, NULL} };
static const a0_field f_associate[] = {
  {"client_id", 0, NULL}, {"client_secret", 0, NULL}, {"authenticator_types", A0_F_REQ | A0_F_ARR, NULL},
  {"oob_channels", A0_F_ARR, NULL}, {"phone_number", 0, NULL}, {"email", 0, NULL}, {NULL, 0, NULL} };
static const a0_field f_challenge[] = {
  CLIENT, {"mfa_token", A0_F_REQ, NULL}, {"challenge_type", 0, NULL}, {"authenticator_id", 0, NULL}, {NULL, 0, NULL} };
static const a0_field f_mfa_otp[] = { CLIENT, {"mfa_token", A0_F_REQ, NULL}, {"otp", A0_F_REQ, NULL}, {NULL, 0, NULL} };
static const a0_field f_mfa_oob[] = {
  CLIENT, {"mfa_token", A0_F_REQ, NULL}, {"oob_code", A0_F_REQ, NULL}, {"binding_code", 0, NULL}, {NULL, 0, NULL} };
static const a0_field f_mfa_rc[] = {
  CLIENT, {"mfa_token", A0_F_REQ, NULL}, {"recovery_code", A0_F_REQ, NULL}, {NULL, 0, NULL} };
static const a0_field f_none[] = { {NULL, 0, NULL} };
static const a0_field f_auth_code[] = {
  CLIENT, {"code", A0_F_REQ, NULL}, {"redirect_uri", A0_F_REQ, NULL}, {"code_verifier", 0, NULL}, {NULL, 0, NULL} };

static const a0_endpoint a0_endpoints[] = {
  {"passwordless_start", "POST", "/passwordless/start", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_pwl_start, 0},
  {"passwordless_login", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "passwordless/otp", f_pwl_login, 0},
  {"refresh", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, "refresh_token", f_refresh, 0},
  {"revoke", "POST", "/oauth/revoke", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_revoke, 0},
  {"userinfo", "GET", "/userinfo", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none, 0},
  {"mfa_authenticators", "GET", "/mfa/authenticators", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none, 0},
  {"mfa_delete_authenticator", "DELETE", "/mfa/authenticators/", A0_BODY_NONE, A0_AUTH_BEARER, NULL, f_none, 0},
  {"mfa_associate", "POST", "/mfa/associate", A0_BODY_JSON, A0_AUTH_BEARER, NULL, f_associate, 0},
  {"mfa_challenge", "POST", "/mfa/challenge", A0_BODY_JSON, A0_AUTH_NONE, NULL, f_challenge, 0},
  {"mfa_otp", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-otp", f_mfa_otp, 0},
  {"mfa_oob", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-oob", f_mfa_oob, 0},
  {"mfa_recovery_code", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, A0_G "mfa-recovery-code", f_mfa_rc, 0},
  {"jwks", "GET", "/.well-known/jwks.json", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none, 0},
  {"openid_configuration", "GET", "/.well-known/openid-configuration", A0_BODY_NONE, A0_AUTH_NONE, NULL, f_none, 0},
  {"authorization_code", "POST", "/oauth/token", A0_BODY_JSON, A0_AUTH_NONE, "authorization_code", f_auth_code, 0},
  /* others (the bundled emulator's control API) are registered by their client at run time */
  {NULL, NULL, NULL, 0, 0, NULL, NULL, 0}
};

#undef CLIENT
#endif
