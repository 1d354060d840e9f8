/*-------------------------------------------------------------------------
 *
 * auth_request.c
 *	  pgapp.authenticate_request: the check PostgREST's db-pre-request runs
 *	  on every request's token (docs/auth.md, "Checking requests").
 *
 * PostgREST has verified the token's signature and times and switched to
 * its role; what it cannot know is whether the token was revoked, and it
 * accepts a refresh token as readily as an access token.  This function
 * takes the token from the Authorization header in request.headers ("Bearer
 * <token>", the scheme in any case), verifies it as decode_token does
 * (signature, times, issuer, audience, revocation: auth_token.c), and
 * refuses one whose typ is "refresh" (PJ007).  Without a bearer token it
 * looks at request.jwt.claims instead (a token PostgREST took from
 * elsewhere, or a test): typ and revocation, as it cannot verify what it
 * does not have.  With neither, the request is anonymous and passes.
 * Failures raise as auth_codec.c does: inside a request, SQLSTATE PGRST
 * with HTTP status 401 and a WWW-Authenticate header.
 *
 * src/auth/auth_request.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "core/json_util.h"
#include "core/util.h"

#include "auth/auth_int.h"

PG_FUNCTION_INFO_V1(pgapp_authenticate_request);

/* A string claim, or NULL when absent or not a string. */
static const char *
string_claim(Jsonb *claims, const char *name)
{
	JsonbValue *v = pgapp_jsonb_get_key(claims, name);

	return v ? pgapp_jsonb_value_cstring(v) : NULL;
}

/*
 * The bearer token of the Authorization header in headers (request.headers
 * text), or NULL when there is none.  Sets *len.
 */
static const char *
bearer_token(const char *headers, size_t *len)
{
	json_t	   *object;
	const char *value;
	const char *p;

	if (headers == NULL || headers[0] == '\0')
		return NULL;
	object = pgapp_json_parse_object_strict(headers, strlen(headers));
	if (object == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("request.headers is not a JSON object with distinct keys"));
	value = pgapp_json_string_value(pgapp_json_get(object, "authorization"));
	if (value == NULL || pg_strncasecmp(value, "bearer", 6) != 0 ||
		(value[6] != ' ' && value[6] != '\t'))
		return NULL;
	for (p = value + 6; *p == ' ' || *p == '\t'; p++)
		;
	*len = strlen(p);
	while (*len > 0 && (p[*len - 1] == ' ' || p[*len - 1] == '\t'))
		(*len)--;
	return *len > 0 ? p : NULL;
}

/* A refresh token is not an access token. */
static void
check_type(Jsonb *claims)
{
	const char *typ = string_claim(claims, "typ");

	if (typ != NULL && strcmp(typ, "refresh") == 0)
		pgapp_auth_token_fail(AUTH_TOKEN_WRONG_TYPE,
							  "A refresh token can only be exchanged for new tokens.");
}

/*
 * pgapp.authenticate_request() -> void: PostgREST's pre-request check of
 * the request's token.
 */
Datum
pgapp_authenticate_request(PG_FUNCTION_ARGS)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	const char *token;
	size_t		len = 0;
	const char *text_claims;
	Jsonb	   *claims;

	token = bearer_token(headers, &len);
	if (token != NULL)
	{
		/* verified, times and revocation included */
		claims = pgapp_auth_verify_token(token, len);
		check_type(claims);
		PG_RETURN_VOID();
	}

	text_claims = GetConfigOption("request.jwt.claims", true, false);
	if (text_claims == NULL || text_claims[0] == '\0')
		PG_RETURN_VOID();		/* anonymous */
	claims = pgapp_jsonb_parse_or_null(text_claims);
	if (claims == NULL || !pgapp_jsonb_is_object(claims))
		PG_RETURN_VOID();		/* anonymous */
	check_type(claims);
	{
		JsonbValue *iat_value = pgapp_jsonb_get_key(claims, "iat");
		double		iat = get_float8_nan();

		if (iat_value != NULL && iat_value->type == jbvNumeric)
			iat = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
													 NumericGetDatum(iat_value->val.numeric)));
		if (pgapp_auth_is_revoked(string_claim(claims, "jti"), string_claim(claims, "sub"), iat))
			pgapp_auth_token_fail(AUTH_TOKEN_REVOKED, NULL);
	}
	PG_RETURN_VOID();
}
