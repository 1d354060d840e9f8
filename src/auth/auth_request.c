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
#include "lib/stringinfo.h"
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

/* ------------------------------------------------ request.headers scanner */

/*
 * request.headers is a JSON object that PostgREST writes, with a string per
 * header; only "authorization" matters here.  Parsing the whole object into
 * a tree cost more than verifying the token, so this scanner walks it once:
 * keys are decoded and compared, the authorization string is decoded, every
 * other value is skipped (strings with their escapes, nested values by
 * depth).  Anything that is not such an object, or an authorization that is
 * not a string or appears twice, is an error: never a guess.
 */
typedef struct HeaderScan
{
	const char *p;
	const char *end;
} HeaderScan;

static inline void
skip_ws(HeaderScan *hs)
{
	while (hs->p < hs->end && (*hs->p == ' ' || *hs->p == '\t' || *hs->p == '\n' || *hs->p == '\r'))
		hs->p++;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
read_hex4(HeaderScan *hs, uint32 *out)
{
	uint32		v = 0;

	if (hs->end - hs->p < 4)
		return false;
	for (int i = 0; i < 4; i++)
	{
		int			h = hex_value(hs->p[i]);

		if (h < 0)
			return false;
		v = (v << 4) | (uint32) h;
	}
	hs->p += 4;
	*out = v;
	return true;
}

/*
 * The rest of a \uXXXX escape at hs->p (after the u), with the low half of
 * a surrogate pair: appended to out as UTF-8 when out is not NULL.  False
 * for \u0000, a lone surrogate or bad hex digits.
 */
static bool
scan_unicode_escape(HeaderScan *hs, StringInfo out)
{
	uint32		c;
	char		utf8[4];
	int			n;

	if (!read_hex4(hs, &c) || c == 0 || (c >= 0xDC00 && c <= 0xDFFF))
		return false;
	if (c >= 0xD800 && c <= 0xDBFF)
	{
		uint32		lo;

		if (hs->end - hs->p < 2 || hs->p[0] != '\\' || hs->p[1] != 'u')
			return false;
		hs->p += 2;
		if (!read_hex4(hs, &lo) || lo < 0xDC00 || lo > 0xDFFF)
			return false;
		c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
	}
	if (c < 0x80)
	{
		utf8[0] = (char) c;
		n = 1;
	}
	else if (c < 0x800)
	{
		utf8[0] = (char) (0xC0 | (c >> 6));
		utf8[1] = (char) (0x80 | (c & 0x3F));
		n = 2;
	}
	else if (c < 0x10000)
	{
		utf8[0] = (char) (0xE0 | (c >> 12));
		utf8[1] = (char) (0x80 | ((c >> 6) & 0x3F));
		utf8[2] = (char) (0x80 | (c & 0x3F));
		n = 3;
	}
	else
	{
		utf8[0] = (char) (0xF0 | (c >> 18));
		utf8[1] = (char) (0x80 | ((c >> 12) & 0x3F));
		utf8[2] = (char) (0x80 | ((c >> 6) & 0x3F));
		utf8[3] = (char) (0x80 | (c & 0x3F));
		n = 4;
	}
	if (out)
		appendBinaryStringInfo(out, utf8, n);
	return true;
}

/*
 * A JSON string at hs->p (on its opening quote): decoded into out when out
 * is not NULL, else skipped.  False when it is not a valid string, holds
 * \u0000 or a lone surrogate.
 */
static bool
scan_string(HeaderScan *hs, StringInfo out)
{
	if (hs->p >= hs->end || *hs->p != '"')
		return false;
	hs->p++;
	while (hs->p < hs->end)
	{
		const char *run = hs->p;

		while (hs->p < hs->end && *hs->p != '"' && *hs->p != '\\' &&
			   (unsigned char) *hs->p >= 0x20)
			hs->p++;
		if (out && hs->p > run)
			appendBinaryStringInfo(out, run, hs->p - run);
		if (hs->p >= hs->end || (unsigned char) *hs->p < 0x20)
			return false;
		if (*hs->p == '"')
		{
			hs->p++;
			return true;
		}
		/* an escape */
		hs->p++;
		if (hs->p >= hs->end)
			return false;
		switch (*hs->p++)
		{
			case '"':
				if (out)
					appendStringInfoChar(out, '"');
				break;
			case '\\':
				if (out)
					appendStringInfoChar(out, '\\');
				break;
			case '/':
				if (out)
					appendStringInfoChar(out, '/');
				break;
			case 'b':
				if (out)
					appendStringInfoChar(out, '\b');
				break;
			case 'f':
				if (out)
					appendStringInfoChar(out, '\f');
				break;
			case 'n':
				if (out)
					appendStringInfoChar(out, '\n');
				break;
			case 'r':
				if (out)
					appendStringInfoChar(out, '\r');
				break;
			case 't':
				if (out)
					appendStringInfoChar(out, '\t');
				break;
			case 'u':
				if (!scan_unicode_escape(hs, out))
					return false;
				break;
			default:
				return false;
		}
	}
	return false;
}

/* Skip one JSON value (a string, a number, a literal, an object, an array). */
static bool
skip_value(HeaderScan *hs)
{
	int			depth = 0;

	do
	{
		skip_ws(hs);
		if (hs->p >= hs->end)
			return false;
		switch (*hs->p)
		{
			case '"':
				if (!scan_string(hs, NULL))
					return false;
				break;
			case '{':
			case '[':
				if (++depth > 64)
					return false;
				hs->p++;
				break;
			case '}':
			case ']':
				if (depth == 0)
					return false;
				depth--;
				hs->p++;
				break;
			case ',':
			case ':':
				if (depth == 0)
					return false;
				hs->p++;
				break;
			default:
				{
					const char *start = hs->p;

					while (hs->p < hs->end && strchr("+-.0123456789eEtruefalsn", *hs->p) != NULL &&
						   *hs->p != '\0')
						hs->p++;
					if (hs->p == start)
						return false;
				}
				break;
		}
	} while (depth > 0);
	return true;
}

/*
 * The Authorization header's value in headers[0..len) (request.headers):
 * true and *value (palloc'd, NULL when there is no such header), or false
 * when headers is not a JSON object, or its authorization is not a string
 * or appears more than once.
 */
static bool
find_authorization(const char *headers, size_t len, char **value)
{
	HeaderScan	hs = {headers, headers + len};
	StringInfoData key;
	bool		first = true;

	*value = NULL;
	initStringInfo(&key);
	skip_ws(&hs);
	if (hs.p >= hs.end || *hs.p++ != '{')
		return false;
	for (;;)
	{
		skip_ws(&hs);
		if (hs.p < hs.end && *hs.p == '}' && first)
		{
			hs.p++;
			break;
		}
		resetStringInfo(&key);
		if (!scan_string(&hs, &key))
			return false;
		skip_ws(&hs);
		if (hs.p >= hs.end || *hs.p++ != ':')
			return false;
		skip_ws(&hs);
		if (key.len == 13 && memcmp(key.data, "authorization", 13) == 0)
		{
			StringInfoData v;

			if (*value != NULL || hs.p >= hs.end || *hs.p != '"')
				return false;
			initStringInfo(&v);
			if (!scan_string(&hs, &v))
				return false;
			*value = v.data;
		}
		else if (!skip_value(&hs))
			return false;
		first = false;
		skip_ws(&hs);
		if (hs.p >= hs.end)
			return false;
		if (*hs.p == ',')
		{
			hs.p++;
			continue;
		}
		if (*hs.p++ != '}')
			return false;
		break;
	}
	skip_ws(&hs);
	return hs.p == hs.end;
}

/*
 * The bearer token of the Authorization header in headers (request.headers
 * text), or NULL when there is none.  Sets *len.
 */
static const char *
bearer_token(const char *headers, size_t *len)
{
	char	   *value;
	const char *p;

	if (headers == NULL || headers[0] == '\0')
		return NULL;
	if (!find_authorization(headers, strlen(headers), &value))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				errmsg("request.headers is not a JSON object of headers"),
				errdetail("It must be a JSON object with at most one \"authorization\", a string."));
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
