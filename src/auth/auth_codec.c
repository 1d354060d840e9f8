/*-------------------------------------------------------------------------
 *
 * auth_codec.c
 *	  The strict parts of reading a token: base64url, the header, and the
 *	  errors a token failure raises.
 *
 * base64url (RFC 4648 section 5) without padding, and nothing else: no "=",
 * "+", "/", whitespace or line breaks, and the unused low bits of the last
 * character must be zero, so that one byte string has exactly one
 * encoding (a token cannot be altered into another that verifies).
 *
 * The header must mean {"alg":"HS256","typ":"JWT"}, with an optional kid:
 * any other member (crit, jku, x5u, jwk, x5c, cty, ...), any other alg
 * ("none", "HS512", "RS256"), a duplicate key or text that is not one JSON
 * object is malformed.  Nothing is resolved from the header but the key id.
 *
 * Failures raise SQLSTATEs of class PJ.  PostgREST answers only PT401 with
 * 401 and the seven failures need seven codes, so where pgapp's error model
 * returns (inside a PostgREST request, docs/errors.md) a failure is raised
 * as SQLSTATE PGRST: status 401, a WWW-Authenticate header as RFC 6750
 * describes, and the PJ code in the body.
 *
 * src/auth/auth_codec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "core/error.h"
#include "core/json_util.h"

#include "auth/auth_int.h"

typedef struct TokenFailureInfo
{
	int			sqlstate;
	const char *code;
	const char *message;
} TokenFailureInfo;

static const TokenFailureInfo failures[] = {
	[AUTH_TOKEN_MALFORMED] = {ERRCODE_PGAPP_TOKEN_MALFORMED, "PJ001", "malformed token"},
	[AUTH_TOKEN_BAD_SIGNATURE] = {ERRCODE_PGAPP_TOKEN_BAD_SIGNATURE, "PJ002", "token signature is invalid"},
	[AUTH_TOKEN_EXPIRED] = {ERRCODE_PGAPP_TOKEN_EXPIRED, "PJ003", "token has expired"},
	[AUTH_TOKEN_NOT_YET_VALID] = {ERRCODE_PGAPP_TOKEN_NOT_YET_VALID, "PJ004", "token is not valid yet"},
	[AUTH_TOKEN_REVOKED] = {ERRCODE_PGAPP_TOKEN_REVOKED, "PJ005", "token has been revoked"},
	[AUTH_TOKEN_REJECTED] = {ERRCODE_PGAPP_TOKEN_REJECTED, "PJ006", "token is not meant for this server"},
	[AUTH_TOKEN_WRONG_TYPE] = {ERRCODE_PGAPP_TOKEN_WRONG_TYPE, "PJ007", "token is not an access token"},
};

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static inline int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* base64url of data, unpadded, palloc'd and NUL-terminated. */
char *
pgapp_auth_b64url_encode(const uint8 *data, size_t len)
{
	char	   *out = palloc((len + 2) / 3 * 4 + 1);
	char	   *p = out;
	size_t		i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = ((uint32) data[i] << 16) | ((uint32) data[i + 1] << 8) | data[i + 2];

		*p++ = b64url_alphabet[(v >> 18) & 63];
		*p++ = b64url_alphabet[(v >> 12) & 63];
		*p++ = b64url_alphabet[(v >> 6) & 63];
		*p++ = b64url_alphabet[v & 63];
	}
	if (len - i == 1)
	{
		uint32		v = (uint32) data[i] << 16;

		*p++ = b64url_alphabet[(v >> 18) & 63];
		*p++ = b64url_alphabet[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32		v = ((uint32) data[i] << 16) | ((uint32) data[i + 1] << 8);

		*p++ = b64url_alphabet[(v >> 18) & 63];
		*p++ = b64url_alphabet[(v >> 12) & 63];
		*p++ = b64url_alphabet[(v >> 6) & 63];
	}
	*p = '\0';
	return out;
}

/*
 * Strict base64url decoding of s[0..len): the bytes (palloc'd, with a NUL
 * after them) and their number in *outlen, or NULL when s is not the one
 * canonical unpadded encoding of some byte string.
 */
uint8 *
pgapp_auth_b64url_decode(const char *s, size_t len, size_t *outlen)
{
	uint8	   *out;
	uint8	   *p;
	uint32		acc = 0;
	int			bits = 0;
	int			last = 0;
	size_t		i;

	if (len % 4 == 1)
		return NULL;
	out = palloc(len / 4 * 3 + 3);
	p = out;
	for (i = 0; i < len; i++)
	{
		int			v = b64url_value((unsigned char) s[i]);

		if (v < 0)
		{
			pfree(out);
			return NULL;
		}
		last = v;
		acc = (acc << 6) | (uint32) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			*p++ = (uint8) (acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	/* the bits left over must be zero (2 bits after 3 chars, 4 after 2) */
	if (bits > 0 && (last & ((1 << bits) - 1)) != 0)
	{
		pfree(out);
		return NULL;
	}
	*p = '\0';
	*outlen = p - out;
	return out;
}

/*
 * Raise a token failure with detail (a full sentence, or NULL): SQLSTATE
 * PJnnn, or PGRST with HTTP status 401 where the error model returns.
 */
void
pgapp_auth_token_fail(AuthTokenFailure failure, const char *detail)
{
	const TokenFailureInfo *f = &failures[failure];
	json_t	   *message;
	json_t	   *response;
	json_t	   *headers;

	if (!pgapp_error_returns())
		ereport(ERROR,
				errcode(f->sqlstate),
				errmsg("%s", f->message),
				detail ? errdetail("%s", detail) : 0);

	message = pgapp_json_object();
	pgapp_json_set(message, "code", pgapp_json_string(f->code));
	pgapp_json_set(message, "message", pgapp_json_string(f->message));
	pgapp_json_set(message, "details", detail ? pgapp_json_string(detail) : pgapp_json_null());
	pgapp_json_set(message, "hint", pgapp_json_null());
	headers = pgapp_json_object();
	pgapp_json_set(headers, "WWW-Authenticate",
				   pgapp_json_string(psprintf("Bearer error=\"invalid_token\", error_description=\"%s\"",
											  f->message)));
	response = pgapp_json_object();
	pgapp_json_set(response, "status", pgapp_json_integer(401));
	pgapp_json_set(response, "headers", headers);
	ereport(ERROR,
			errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
			errmsg("%s", pgapp_json_dump(message)),
			errdetail("%s", pgapp_json_dump(response)));
}

typedef struct HeaderCheck
{
	bool		alg;
	bool		typ;
	const char *kid;
	const char *problem;
} HeaderCheck;

/* One header member: alg, typ and kid as allowed, nothing else. */
static void
check_header_member(const char *key, json_t *value, void *arg)
{
	HeaderCheck *hc = (HeaderCheck *) arg;
	const char *s = pgapp_json_string_value(value);

	if (hc->problem)
		return;
	if (strcmp(key, "alg") == 0)
	{
		if (s == NULL || strcmp(s, "HS256") != 0)
			hc->problem = s ? psprintf("Only alg \"HS256\" is accepted, not \"%s\".", pgapp_echo(s))
				: "Only alg \"HS256\" is accepted.";
		hc->alg = true;
	}
	else if (strcmp(key, "typ") == 0)
	{
		if (s == NULL || strcmp(s, "JWT") != 0)
			hc->problem = "The header's typ must be \"JWT\".";
		hc->typ = true;
	}
	else if (strcmp(key, "kid") == 0)
	{
		if (s == NULL || !pgapp_auth_kid_valid(s, strlen(s)))
			hc->problem = "The header's kid must be 1 to 64 of the characters A-Z a-z 0-9 . _ -.";
		hc->kid = s;
	}
	else
		hc->problem = psprintf("The header member \"%s\" is not accepted.", pgapp_echo(key));
}

/*
 * Check the decoded header text; return its kid (palloc'd) or "" when it
 * has none.  Raises PJ001 for anything else than the accepted header.
 */
const char *
pgapp_auth_check_header(const char *text, size_t len)
{
	json_t	   *header = pgapp_json_parse_object_strict(text, len);
	HeaderCheck hc = {false, false, NULL, NULL};
	const char *kid;

	if (header == NULL)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED,
							  "The header is not one JSON object with distinct keys.");
	pgapp_json_foreach(header, check_header_member, &hc);
	if (hc.problem == NULL && (!hc.alg || !hc.typ))
		hc.problem = "The header must give alg \"HS256\" and typ \"JWT\".";
	if (hc.problem)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED, hc.problem);
	kid = pstrdup(hc.kid ? hc.kid : "");
	pgapp_json_free(header);
	return kid;
}
