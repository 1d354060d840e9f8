/*-------------------------------------------------------------------------
 *
 * auth_keys.c
 *	  The secrets that sign and verify tokens: pgapp.auth_jwt_secret, or
 *	  the key file named by pgapp.auth_jwt_secret_file.
 *
 * Exactly one source must be set.  The inline secret is one unnamed key
 * (tokens without kid); it is used only when pgapp is preloaded, because a
 * backend that has not loaded the library holds it as a placeholder that
 * any role can SHOW.  The file holds either one secret (its text, without
 * a final line break) or a key set
 *
 *     {"current": "k2", "keys": {"k1": "<secret>", "k2": "<secret>"}}
 *
 * whose current key signs and every key verifies the tokens naming it in
 * their kid; the key "" verifies tokens without kid.  Every secret is at
 * least 32 bytes.  The file must be a regular file that belongs to the
 * server's operating system user with no permission for group or others;
 * it is opened without blocking, so that a FIFO or device in its place is
 * refused rather than waited on.
 *
 * A use stats the file when the last stat is pgapp.auth_key_file_recheck
 * old or more (a stat per token was a visible part of a request's cost); the keys
 * read last are kept (in a memory context of this backend) while the path
 * and the file's identity, size, times, owner and mode stay the same, and
 * wiped when they are replaced.  So a changed or removed file takes effect
 * in each backend within pgapp.auth_key_file_recheck.  pgapp_auth_keys_generation
 * changes whenever the keys may have (auth_token.c caches verified tokens
 * per generation).
 * A file that became invalid is an error, never a fall-back to the keys
 * read before.  Messages name files and settings, never secrets.
 *
 * src/auth/auth_keys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/crypto.h"
#include "core/json_util.h"
#include "core/module.h"
#include "core/settings.h"

#include "auth/auth_int.h"

#define SECRET_SETTING "pgapp.auth_jwt_secret"
#define FILE_SETTING "pgapp.auth_jwt_secret_file"

/* the inline secret as a key set of one (points into settings.c) */
static AuthKey inline_key;
static AuthKeySet inline_set = {1, 0, &inline_key};

/* the key file read last */
static MemoryContext file_cxt = NULL;
static AuthKeySet *file_set = NULL;
static char *file_path = NULL;
static struct stat file_stat;
static TimestampTz file_checked_at = 0;


/* bumped whenever the keys may have changed */
static uint64 keys_generation = 1;
static uint8 inline_seen[PGAPP_HMAC_SHA256_BYTES];
static bool inline_seen_valid = false;

static const AuthKeySet *read_key_file(const char *setting);
static AuthKeySet *parse_key_file(const char *path, char *buf, size_t len);
static void forget_file(void);
static void bad_key_file(const char *path, const char *detail) pg_attribute_noreturn();

/*
 * The configured keys; raises 55000 with a hint naming the setting when no
 * usable secret is configured.
 */
const AuthKeySet *
pgapp_auth_keys(void)
{
	const char *file = pgapp_auth_jwt_secret_file;
	size_t		len;
	const char *secret = pgapp_auth_jwt_secret_value(&len);
	bool		has_file = file != NULL && file[0] != '\0';

	if (has_file && secret != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("both \"%s\" and \"%s\" are set", SECRET_SETTING, FILE_SETTING),
				errhint("Set only one of them in the server's configuration, then reload it."));
	if (has_file)
		return read_key_file(file);
	if (secret == NULL)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("no token secret is configured"),
				errhint("Set \"%s\" (or \"%s\") in the server's configuration, then reload it.",
						FILE_SETTING, SECRET_SETTING));
	if (!pgapp_preloaded)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("\"%s\" is used only when pgapp is preloaded", SECRET_SETTING),
				errdetail("Without preloading, a session that has not loaded pgapp can read the setting."),
				errhint("Add pgapp to shared_preload_libraries, or use \"%s\".", FILE_SETTING));
	if (len < PGAPP_SECRET_MIN_LENGTH)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("\"%s\" is too short", SECRET_SETTING),
				errdetail("A token secret must be at least %d bytes.", PGAPP_SECRET_MIN_LENGTH),
				errhint("Set \"%s\" to a random secret of at least %d bytes, then reload the configuration.",
						SECRET_SETTING, PGAPP_SECRET_MIN_LENGTH));
	if (inline_key.secret != (const uint8 *) secret || inline_key.len != len ||
		!inline_seen_valid)
	{
		/* a new value, or the same at a new address: a fingerprint tells */
		uint8		seen[PGAPP_HMAC_SHA256_BYTES];

		pgapp_crypto_hmac_sha256((const uint8 *) secret, len, (const uint8 *) "pgapp", 5, seen);
		if (!inline_seen_valid || !pgapp_crypto_equal(seen, inline_seen, sizeof(seen)))
			keys_generation++;
		memcpy(inline_seen, seen, sizeof(seen));
		inline_seen_valid = true;
		pgapp_crypto_wipe(seen, sizeof(seen));
	}
	inline_key.kid = "";
	inline_key.secret = (const uint8 *) secret;
	inline_key.len = len;
	return &inline_set;
}

/*
 * A number that changes whenever the keys pgapp_auth_keys returns may have
 * changed (another file, another secret); read it after pgapp_auth_keys.
 */
uint64
pgapp_auth_keys_generation(void)
{
	return keys_generation;
}

/* The key named kid ("" for tokens without kid), or NULL. */
const AuthKey *
pgapp_auth_key_find(const AuthKeySet *set, const char *kid)
{
	int			i;

	for (i = 0; i < set->nkeys; i++)
		if (strcmp(set->keys[i].kid, kid) == 0)
			return &set->keys[i];
	return NULL;
}

/* Is kid[0..len) 1..64 of [A-Za-z0-9._-]? */
bool
pgapp_auth_kid_valid(const char *kid, size_t len)
{
	size_t		i;

	if (len == 0 || len > PGAPP_KID_MAX_LENGTH)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = kid[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Is b the same file as a, unchanged (identity, size, mode, owner, times)? */
static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size && a->st_mode == b->st_mode &&
		a->st_uid == b->st_uid &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Wipe and drop the keys read last. */
static void
forget_file(void)
{
	int			i;

	if (file_set != NULL)
		for (i = 0; i < file_set->nkeys; i++)
			pgapp_crypto_wipe((void *) file_set->keys[i].secret, file_set->keys[i].len);
	if (file_cxt != NULL)
		MemoryContextReset(file_cxt);
	file_set = NULL;
	file_path = NULL;
	file_checked_at = 0;
	keys_generation++;
}

/* The keys of the file named by the setting, read again if it changed. */
static const AuthKeySet *
read_key_file(const char *setting)
{
	char	   *path = is_absolute_path(setting) ? pstrdup(setting)
	: psprintf("%s/%s", DataDir, setting);
	const char *name = setting; /* in messages: as configured */
	struct stat st;
	int			fd;
	char	   *buf;
	ssize_t		got;
	MemoryContext old;

	TimestampTz now = GetCurrentTimestamp();

	if (file_set != NULL && strcmp(path, file_path) == 0 &&
		now >= file_checked_at && now - file_checked_at < (TimestampTz) pgapp_auth_key_file_recheck * 1000)
		return file_set;
	if (stat(path, &st) != 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not read token key file \"%s\": %m", name),
				errhint("Check \"%s\".", FILE_SETTING));
	if (file_set != NULL && strcmp(path, file_path) == 0 && same_file(&st, &file_stat))
	{
		file_checked_at = now;
		return file_set;
	}
	forget_file();

	/*
	 * O_NONBLOCK: opening a FIFO (or a device) for reading would otherwise
	 * wait in the kernel for a writer, where neither a cancel nor
	 * pg_terminate_backend reaches the backend.  It changes nothing for the
	 * regular file that fstat then insists on.
	 */
	fd = OpenTransientFile(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not open token key file \"%s\": %m", name),
				errhint("Check \"%s\".", FILE_SETTING));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not stat token key file \"%s\": %m", name));
	if (!S_ISREG(st.st_mode) || st.st_size > PGAPP_KEY_FILE_MAX_SIZE)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("token key file \"%s\" is not a regular file of at most %d bytes",
					   name, PGAPP_KEY_FILE_MAX_SIZE),
				errhint("Check \"%s\".", FILE_SETTING));
	if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("token key file \"%s\" is open to other users", name),
				errdetail("It must belong to the database server's operating system user and give group and others no permission."),
				errhint("chown it to the server's user and chmod it 600."));

	buf = palloc(st.st_size + 1);
	got = read(fd, buf, st.st_size);
	if (got < 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("could not read token key file \"%s\": %m", name));
	if (got != st.st_size)
		ereport(ERROR,
				errcode(ERRCODE_DATA_CORRUPTED),
				errmsg("could not read token key file \"%s\": read %zd of %zu bytes",
					   name, got, (size_t) st.st_size));
	CloseTransientFile(fd);
	buf[got] = '\0';

	if (file_cxt == NULL)
		file_cxt = AllocSetContextCreate(TopMemoryContext, "pgapp token keys",
										 ALLOCSET_SMALL_SIZES);
	/* the file's text is wiped whether it parses or not */
	PG_TRY();
	{
		old = MemoryContextSwitchTo(file_cxt);
		file_set = parse_key_file(name, buf, got);
		file_path = pstrdup(path);
		MemoryContextSwitchTo(old);
	}
	PG_FINALLY();
	{
		pgapp_crypto_wipe(buf, got);
	}
	PG_END_TRY();
	file_stat = st;
	file_checked_at = now;
	pfree(buf);
	return file_set;
}

/* Raise 55000 for an unusable key file; detail never quotes its contents. */
static void
bad_key_file(const char *path, const char *detail)
{
	ereport(ERROR,
			errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			errmsg("token key file \"%s\" is not usable", path),
			errdetail("%s", detail),
			errhint("Write one secret of at least %d bytes, or a key set {\"current\": kid, \"keys\": {kid: secret, ...}}, into the file named by \"%s\".",
					PGAPP_SECRET_MIN_LENGTH, FILE_SETTING));
}

typedef struct KeyFileParse
{
	const char *path;
	AuthKey    *keys;
	int			nkeys;
	int			maxkeys;
	const char *problem;
} KeyFileParse;

/* One member of "keys": check its id and secret, copy the secret, wipe jansson's copy. */
static void
add_key(const char *kid, json_t *value, void *arg)
{
	KeyFileParse *kp = (KeyFileParse *) arg;
	const char *s = pgapp_json_string_value(value);
	size_t		len = s ? strlen(s) : 0;
	uint8	   *secret;

	if (kp->problem)
		return;
	if (kid[0] != '\0' && !pgapp_auth_kid_valid(kid, strlen(kid)))
	{
		kp->problem = "A key id is 1 to 64 of the characters A-Z a-z 0-9 . _ - (or \"\" for tokens without kid).";
		return;
	}
	if (s == NULL || len < PGAPP_SECRET_MIN_LENGTH)
	{
		kp->problem = psprintf("The key \"%s\" is not a string of at least %d bytes.",
							   kid, PGAPP_SECRET_MIN_LENGTH);
		return;
	}
	if (kp->nkeys == kp->maxkeys)
	{
		kp->maxkeys *= 2;
		kp->keys = repalloc(kp->keys, kp->maxkeys * sizeof(AuthKey));
	}
	secret = palloc(len);
	memcpy(secret, s, len);
	pgapp_crypto_wipe((char *) s, len);
	kp->keys[kp->nkeys].kid = pstrdup(kid);
	kp->keys[kp->nkeys].secret = secret;
	kp->keys[kp->nkeys].len = len;
	kp->nkeys++;
}

/* A key set has the members "current" and "keys" only. */
static void
check_top_member(const char *key, json_t *value, void *arg)
{
	const char **problem = (const char **) arg;

	if (*problem == NULL && strcmp(key, "current") != 0 && strcmp(key, "keys") != 0)
		*problem = "A key set has only the members \"current\" and \"keys\".";
}

/* The keys of a file's text buf[0..len) (NUL-terminated), in the current context. */
static AuthKeySet *
parse_key_file(const char *path, char *buf, size_t len)
{
	AuthKeySet *set = palloc0(sizeof(AuthKeySet));
	size_t		i = 0;
	json_t	   *json;
	json_t	   *keys;
	const char *current;
	KeyFileParse kp = {path, NULL, 0, 4, NULL};
	int			k;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
		i++;
	if (i == len || buf[i] != '{')
	{
		/* one secret: the text without a final line break */
		AuthKey    *key = palloc(sizeof(AuthKey));

		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
		if (len < PGAPP_SECRET_MIN_LENGTH)
			bad_key_file(path, psprintf("A token secret must be at least %d bytes.", PGAPP_SECRET_MIN_LENGTH));
		key->kid = "";
		key->secret = palloc(len);
		memcpy((uint8 *) key->secret, buf, len);
		key->len = len;
		set->nkeys = 1;
		set->keys = key;
		return set;
	}

	json = pgapp_json_parse_object_strict(buf, len);
	if (json == NULL)
		bad_key_file(path, "It starts with \"{\" but is not one JSON object with distinct keys.");
	pgapp_json_foreach(json, check_top_member, &kp.problem);
	if (kp.problem)
		bad_key_file(path, kp.problem);
	keys = pgapp_json_get(json, "keys");
	current = pgapp_json_string_value(pgapp_json_get(json, "current"));
	if (keys == NULL || !pgapp_json_is_object(keys) || current == NULL)
		bad_key_file(path, "A key set has a string \"current\" and an object \"keys\".");
	kp.keys = palloc(kp.maxkeys * sizeof(AuthKey));
	pgapp_json_foreach(keys, add_key, &kp);
	if (kp.problem)
		bad_key_file(path, kp.problem);
	set->nkeys = kp.nkeys;
	set->keys = kp.keys;
	set->current = -1;
	for (k = 0; k < kp.nkeys; k++)
		if (strcmp(kp.keys[k].kid, current) == 0)
			set->current = k;
	if (set->current < 0)
		bad_key_file(path, "\"current\" names no key of \"keys\".");
	pgapp_json_free(json);
	return set;
}
