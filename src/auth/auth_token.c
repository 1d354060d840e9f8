/*-------------------------------------------------------------------------
 *
 * auth_token.c
 *	  pgapp.encode_token and pgapp.decode_token: HS256 JSON Web Tokens
 *	  that PostgREST accepts (docs/auth.md).
 *
 * Decoding checks, in this order, and stops at the first failure: the
 * configured keys (55000 when none is usable), the length (at most
 * PGAPP_TOKEN_MAX_LENGTH bytes), three segments of strict base64url, the
 * header (auth_codec.c), a signature of 32 bytes, the key the header's kid
 * names, the signature (compared in constant time), and only then the
 * payload's JSON: one JSON object with distinct keys, exp a number, nbf and
 * iat numbers when present, each against the clock with pgapp.auth_jwt_leeway, and iss and
 * aud when pgapp.auth_jwt_issuer and pgapp.auth_jwt_audience are set.
 * Nothing of an unverified payload is read.  Last, a token whose jti is
 * revoked or whose sub has a cutoff after its iat fails with PJ005
 * (auth_revoke.c: from shared memory, no table read, in the usual case).
 *
 * Encoding sets sub, iat, nbf, exp (now + ttl, at most
 * pgapp.auth_token_max_ttl), jti (128 random bits),
 * typ ("access" unless the claims say "refresh"), iss and aud (when
 * configured), then the caller's claims; the claims pgapp sets are refused
 * in claims, so a caller cannot choose a lifetime beyond ttl.  A role claim
 * must name a role the caller is a member of that neither is nor inherits
 * the privileges of a superuser, a role that bypasses row-level security, a
 * predefined pg_ role or one of pgapp's own roles: PostgREST switches to it.
 * EXECUTE is granted to pgapp_admin only.
 *
 * src/auth/auth_token.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "core/crypto.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/settings.h"

#include "auth/auth_int.h"

PG_FUNCTION_INFO_V1(pgapp_encode_token);
PG_FUNCTION_INFO_V1(pgapp_decode_token);

/* claims pgapp sets, refused in encode_token's claims */
static const char *const reserved_claims[] = {
	"sub", "exp", "iat", "nbf", "jti", "iss", "aud", NULL
};

/* seconds since 1970 of a timestamptz */
static double
unix_seconds(TimestampTz t)
{
	return (double) t / USECS_PER_SEC +
		(double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

/* base64url of HMAC-SHA256(key, input[0..len)). */
static char *
sign(const AuthKey *key, const char *input, size_t len)
{
	uint8		mac[PGAPP_HMAC_SHA256_BYTES];

	pgapp_crypto_hmac_sha256(key->secret, key->len, (const uint8 *) input, len, mac);
	return pgapp_auth_b64url_encode(mac, sizeof(mac));
}

/* ---------------------------------------------------------------- decode */

/* A numeric claim as seconds, or fail as malformed. */
static bool
numeric_claim(Jsonb *claims, const char *name, bool required, double *out)
{
	JsonbValue *v = pgapp_jsonb_get_key(claims, name);

	if (v == NULL)
	{
		if (required)
			pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED,
								  psprintf("The token has no \"%s\" claim.", name));
		return false;
	}
	if (v->type != jbvNumeric)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED,
							  psprintf("The \"%s\" claim is not a number.", name));

	/*
	 * numeric_float8 raises 22003 for a number a double cannot hold (1e-400
	 * underflows); this one gives 0 or an infinity, which the checks judge.
	 */
	*out = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
	return true;
}

/* Does the aud claim (a string or an array of strings) name audience? */
static bool
audience_matches(Jsonb *claims, const char *audience)
{
	JsonbValue *v = pgapp_jsonb_get_key(claims, "aud");
	int			n;
	int			i;
	char	   *s;

	if (v == NULL)
		return false;
	s = pgapp_jsonb_value_cstring(v);
	if (s != NULL)
		return strcmp(s, audience) == 0;
	n = pgapp_jsonb_array_length(v);
	for (i = 0; i < n; i++)
	{
		s = pgapp_jsonb_value_cstring(pgapp_jsonb_array_get(v, i));
		if (s != NULL && strcmp(s, audience) == 0)
			return true;
	}
	return false;
}

/* The time claims against now, then iss and aud if configured. */
static void
check_claims(Jsonb *claims)
{
	double		now = unix_seconds(GetCurrentTimestamp());
	double		leeway = pgapp_auth_jwt_leeway;
	double		t;

	numeric_claim(claims, "exp", true, &t);
	if (now >= t + leeway)
		pgapp_auth_token_fail(AUTH_TOKEN_EXPIRED, NULL);
	if (numeric_claim(claims, "nbf", false, &t) && now + leeway < t)
		pgapp_auth_token_fail(AUTH_TOKEN_NOT_YET_VALID, NULL);
	if (numeric_claim(claims, "iat", false, &t) && now + leeway < t)
		pgapp_auth_token_fail(AUTH_TOKEN_NOT_YET_VALID, "The token was issued in the future.");
	if (pgapp_auth_jwt_issuer && pgapp_auth_jwt_issuer[0] != '\0')
	{
		JsonbValue *iss = pgapp_jsonb_get_key(claims, "iss");
		char	   *s = iss ? pgapp_jsonb_value_cstring(iss) : NULL;

		if (s == NULL || strcmp(s, pgapp_auth_jwt_issuer) != 0)
			pgapp_auth_token_fail(AUTH_TOKEN_REJECTED,
								  "Its issuer is not pgapp.auth_jwt_issuer.");
	}
	if (pgapp_auth_jwt_audience && pgapp_auth_jwt_audience[0] != '\0' &&
		!audience_matches(claims, pgapp_auth_jwt_audience))
		pgapp_auth_token_fail(AUTH_TOKEN_REJECTED,
							  "Its audience does not include pgapp.auth_jwt_audience.");
}

/* A string claim, or NULL when absent or not a string. */
static const char *
string_claim(Jsonb *claims, const char *name)
{
	JsonbValue *v = pgapp_jsonb_get_key(claims, name);

	return v ? pgapp_jsonb_value_cstring(v) : NULL;
}

/*
 * Revoked (auth_revoke.c): its jti, or its sub with an iat before the
 * subject's cutoff.  A jti or sub that is not a string is not looked up.
 */
static void
check_revocation(Jsonb *claims)
{
	double		iat;

	if (!numeric_claim(claims, "iat", false, &iat))
		iat = get_float8_nan();
	if (pgapp_auth_is_revoked(string_claim(claims, "jti"), string_claim(claims, "sub"), iat))
		pgapp_auth_token_fail(AUTH_TOKEN_REVOKED, NULL);
}

/*
 * Verify token[0..len) and return its claims; raises a PJ failure (or
 * 55000 for the configuration) otherwise.
 */
static Jsonb *
verify_token(const char *token, size_t len)
{
	const AuthKeySet *keys = pgapp_auth_keys();
	const char *dot1 = NULL;
	const char *dot2 = NULL;
	const char *kid;
	const AuthKey *key;
	uint8	   *header;
	uint8	   *payload;
	uint8	   *signature;
	size_t		header_len;
	size_t		payload_len;
	size_t		signature_len;
	Jsonb	   *claims;
	size_t		i;

	if (len == 0 || len > PGAPP_TOKEN_MAX_LENGTH)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED,
							  psprintf("A token is 1 to %d bytes long.", PGAPP_TOKEN_MAX_LENGTH));
	for (i = 0; i < len; i++)
	{
		if (token[i] != '.')
			continue;
		if (dot1 == NULL)
			dot1 = token + i;
		else if (dot2 == NULL)
			dot2 = token + i;
		else
			dot2 = token;		/* a third dot */
	}
	if (dot1 == NULL || dot2 == NULL || dot2 == token)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED, "A token has exactly three segments.");

	/* strict base64url segments, the header checked, the signature 32 bytes */
	header = pgapp_auth_b64url_decode(token, dot1 - token, &header_len);
	if (header == NULL || header_len == 0)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED, "The header is not base64url.");
	kid = pgapp_auth_check_header((const char *) header, header_len);
	payload = pgapp_auth_b64url_decode(dot1 + 1, dot2 - dot1 - 1, &payload_len);
	if (payload == NULL || payload_len == 0)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED, "The payload is not base64url.");
	signature = pgapp_auth_b64url_decode(dot2 + 1, token + len - dot2 - 1, &signature_len);
	if (signature == NULL || signature_len != PGAPP_HMAC_SHA256_BYTES)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED, "The signature is not 32 bytes of base64url.");

	key = pgapp_auth_key_find(keys, kid);
	if (key == NULL)
		pgapp_auth_token_fail(AUTH_TOKEN_BAD_SIGNATURE,
							  kid[0] ? psprintf("No configured key has the id \"%s\".", kid)
							  : "No configured key verifies tokens without kid.");
	if (!pgapp_crypto_hmac_sha256_verify(key->secret, key->len, (const uint8 *) token,
										 dot2 - token, signature))
		pgapp_auth_token_fail(AUTH_TOKEN_BAD_SIGNATURE, NULL);

	/* signed by a key of ours: now the payload may be read */
	if (pgapp_json_parse_object_strict((const char *) payload, payload_len) == NULL)
		pgapp_auth_token_fail(AUTH_TOKEN_MALFORMED,
							  "The payload is not one JSON object with distinct keys.");
	claims = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum((char *) payload)));
	check_claims(claims);
	check_revocation(claims);
	return claims;
}

/*
 * pgapp.decode_token(token text) -> jsonb: the claims of a valid token.
 */
Datum
pgapp_decode_token(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);

	PG_RETURN_JSONB_P(verify_token(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)));
}

/* ---------------------------------------------------------------- encode */

/*
 * jsonb's text without the blanks it puts after ":" and "," (outside
 * strings), in place: the compact form other JWT libraries write.
 */
static void
compact_json(char *s)
{
	char	   *out = s;
	bool		in_string = false;

	for (; *s; s++)
	{
		if (in_string)
		{
			*out++ = *s;
			if (*s == '\\' && s[1] != '\0')
				*out++ = *++s;
			else if (*s == '"')
				in_string = false;
		}
		else if (*s != ' ')
		{
			*out++ = *s;
			in_string = (*s == '"');
		}
	}
	*out = '\0';
}

/*
 * Is role one of those a token must not act as: a superuser, BYPASSRLS, a
 * predefined role (pg_*, OIDs below FirstNormalObjectId), pgapp_admin or
 * pgapp_worker?
 */
static bool
powerful_role(Form_pg_authid role)
{
	const char *name = NameStr(role->rolname);

	return role->rolsuper || role->rolbypassrls ||
		role->oid < FirstNormalObjectId || strncmp(name, "pg_", 3) == 0 ||
		strcmp(name, "pgapp_admin") == 0 || strcmp(name, "pgapp_worker") == 0;
}

/*
 * The powerful role whose privileges roleid has, itself or by inheriting
 * them (a member of pgapp_admin may call what pgapp_admin may, a member of
 * pg_write_all_data writes every table, a member of a superuser acts as the
 * owner of the superuser's tables, row-level security aside), as a palloc'd
 * name; NULL when it has none.  pg_authid is small: one scan.
 */
static char *
powerful_privileges(Oid roleid)
{
	Relation	rel = table_open(AuthIdRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	char	   *found = NULL;

	while (found == NULL && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);

		if (powerful_role(role) && has_privs_of_role(roleid, role->oid))
			found = pstrdup(NameStr(role->rolname));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The role claim: a role the current user is a member of that neither is
 * nor has the privileges of a superuser, a BYPASSRLS role, a predefined pg_
 * role, pgapp_admin or pgapp_worker (PostgREST switches to it, and a role
 * inherits its memberships' privileges: the names alone prove nothing).
 */
static void
check_role_claim(const char *name)
{
	Oid			roleid = get_role_oid(name, true);
	HeapTuple	tup;
	bool		powerful;
	char	   *inherited;

	if (!OidIsValid(roleid))
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("role \"%s\" does not exist", pgapp_echo(name)));
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", roleid);
	powerful = powerful_role((Form_pg_authid) GETSTRUCT(tup));
	ReleaseSysCache(tup);
	if (powerful)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("cannot sign a token for role \"%s\"", name),
				errdetail("A token's role cannot be a superuser, a role with BYPASSRLS, a predefined role, pgapp_admin or pgapp_worker."));
	inherited = powerful_privileges(roleid);
	if (inherited != NULL)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("cannot sign a token for role \"%s\"", name),
				errdetail("The role has the privileges of role \"%s\", which a token's role cannot have.",
						  inherited));
	if (!is_member_of_role(GetUserId(), roleid))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("cannot sign a token for role \"%s\"", name),
				errdetail("Only members of a role may sign tokens that act as it."));
}

typedef struct ClaimsCheck
{
	bool		has_typ;
} ClaimsCheck;

/* One of the caller's claims: not one pgapp sets; typ and role checked. */
static void
check_claim(const char *key, int keylen, JsonbValue *value, void *arg)
{
	ClaimsCheck *cc = (ClaimsCheck *) arg;
	char	   *name = pnstrdup(key, keylen);
	char	   *s = pgapp_jsonb_value_cstring(value);
	int			i;

	for (i = 0; reserved_claims[i] != NULL; i++)
		if (strcmp(name, reserved_claims[i]) == 0)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("claim \"%s\" is set by pgapp.encode_token", name),
					errhint("Pass the subject as sub and the lifetime as ttl; pgapp sets iat, nbf, exp, jti, iss and aud."));
	if (strcmp(name, "typ") == 0)
	{
		if (s == NULL || (strcmp(s, "access") != 0 && strcmp(s, "refresh") != 0))
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("claim \"typ\" must be \"access\" or \"refresh\""));
		cc->has_typ = true;
	}
	else if (strcmp(name, "role") == 0)
	{
		if (s == NULL)
			ereport(ERROR,
					errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("claim \"role\" must be a string"));
		check_role_claim(s);
	}
}

/* The payload: pgapp's claims, then the caller's. */
static Jsonb *
build_payload(const char *sub, Jsonb *claims, Interval *ttl, bool has_typ)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz exp;
	int64		iat = (int64) floor(unix_seconds(now));
	uint8		jti[16];
	PgappJsonbBuilder b = {0};

	exp = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												  TimestampTzGetDatum(now),
												  IntervalPGetDatum(ttl)));
	if (exp < now + USECS_PER_SEC)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("ttl must be at least 1 second"));
	if (exp > now + (TimestampTz) pgapp_auth_token_max_ttl * USECS_PER_SEC)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("ttl must be at most pgapp.auth_token_max_ttl (%d seconds)",
					   pgapp_auth_token_max_ttl),
				errdetail("A subject's revocation cutoff is kept that long: a longer-lived token could outlive it."));
	pgapp_crypto_random(jti, sizeof(jti));

	pgapp_jsonb_begin_object(&b);
	pgapp_jsonb_key(&b, "sub");
	pgapp_jsonb_add_string(&b, sub);
	pgapp_jsonb_key(&b, "iat");
	pgapp_jsonb_add_int(&b, iat);
	pgapp_jsonb_key(&b, "nbf");
	pgapp_jsonb_add_int(&b, iat);
	pgapp_jsonb_key(&b, "exp");
	pgapp_jsonb_add_int(&b, (int64) floor(unix_seconds(exp)));
	pgapp_jsonb_key(&b, "jti");
	pgapp_jsonb_add_string(&b, pgapp_auth_b64url_encode(jti, sizeof(jti)));
	if (!has_typ)
	{
		pgapp_jsonb_key(&b, "typ");
		pgapp_jsonb_add_string(&b, "access");
	}
	if (pgapp_auth_jwt_issuer && pgapp_auth_jwt_issuer[0] != '\0')
	{
		pgapp_jsonb_key(&b, "iss");
		pgapp_jsonb_add_string(&b, pgapp_auth_jwt_issuer);
	}
	if (pgapp_auth_jwt_audience && pgapp_auth_jwt_audience[0] != '\0')
	{
		pgapp_jsonb_key(&b, "aud");
		pgapp_jsonb_add_string(&b, pgapp_auth_jwt_audience);
	}
	pgapp_jsonb_end_object(&b);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(pgapp_jsonb_finish(&b)),
											  JsonbPGetDatum(claims)));
}

/*
 * pgapp.encode_token(sub text, claims jsonb, ttl interval) -> text: an
 * HS256 token signed with the current key.
 */
Datum
pgapp_encode_token(PG_FUNCTION_ARGS)
{
	char	   *sub = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *claims = PG_GETARG_JSONB_P(1);
	Interval   *ttl = PG_GETARG_INTERVAL_P(2);
	const AuthKeySet *keys = pgapp_auth_keys();
	const AuthKey *key = &keys->keys[keys->current];
	ClaimsCheck cc = {false};
	Jsonb	   *payload;
	char	   *header;
	char	   *payload_text;
	StringInfoData token;

	if (sub[0] == '\0')
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("sub must not be empty"));
	if (!pgapp_jsonb_is_object(claims))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("claims must be a JSON object"));
	pgapp_jsonb_foreach(&claims->root, check_claim, &cc);

	payload = build_payload(sub, claims, ttl, cc.has_typ);
	header = key->kid[0] ? psprintf("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", key->kid)
		: pstrdup("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
	payload_text = JsonbToCString(NULL, &payload->root, VARSIZE(payload));
	compact_json(payload_text);

	initStringInfo(&token);
	appendStringInfoString(&token, pgapp_auth_b64url_encode((const uint8 *) header, strlen(header)));
	appendStringInfoChar(&token, '.');
	appendStringInfoString(&token, pgapp_auth_b64url_encode((const uint8 *) payload_text,
															strlen(payload_text)));
	appendStringInfo(&token, ".%s", sign(key, token.data, token.len));
	if (token.len > PGAPP_TOKEN_MAX_LENGTH)
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("token would be %d bytes, more than %d", token.len, PGAPP_TOKEN_MAX_LENGTH),
				errhint("Put fewer claims in the token."));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(token.data, token.len));
}
