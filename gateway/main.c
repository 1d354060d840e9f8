/*-------------------------------------------------------------------------
 *
 * main.c
 *	  pgapp-gateway: settings, the libwebsockets context and the event loop.
 *
 * Settings (docs/gateway.md lists them) come from, highest first: flags,
 * PGAPP_GATEWAY_* environment variables, the file of --config (or of
 * PGAPP_GATEWAY_CONFIG), the defaults below -- as PostgREST reads its file
 * and then its environment, with flags on top.  One table (settings[])
 * describes each setting once: its flag, which is also its key in the
 * file, its variable, its kind and its range.  A bad value, an unknown key
 * or a file that cannot be read ends the program with status 2 and a
 * message naming where the value came from.
 *
 * The program runs one libwebsockets context with one vhost and the poll
 * event loop on one thread; SIGINT and SIGTERM stop the loop, which closes
 * every client and database connection before exiting.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gateway.h"

GwConfig	gw_config = {
	.listen_host = NULL,
	.port = 4000,
	.conninfo = "",
	.socket_path = "/socket",
	.origins = NULL,
	.anon_role = NULL,
	.max_connections = 10000,
	.max_message = 65536,
	.max_queue = 1048576,
	.max_channels = 100,
	.db_pool = 2,
	.idle_timeout = 60,
	.verbose = GW_INFO,
	.presence_ttl = 30,
	.rate_limit = 100,
	.rate_window = 10,
	.rate_limiter = "default",
	.static_dir = NULL,
};

char		gw_instance[17];
char		gw_rate_nonce[17];
struct lws_context *gw_context;
struct lws_vhost *gw_vhost;
bool		gw_stopping;

static volatile sig_atomic_t stopping;
static lws_sorted_usec_list_t idle_sul;

/* How a setting's text becomes its value. */
typedef enum SettingKind
{
	SETTING_INT,				/* an integer in [min, max] */
	SETTING_TEXT,				/* any text ("" too) */
	SETTING_NAME				/* text; "" means unset (NULL) */
} SettingKind;

typedef struct Setting
{
	const char *name;			/* the flag (--name) and the file's key */
	const char *env;			/* the environment variable */
	SettingKind kind;
	int			min;
	int			max;
	void	   *value;			/* int * or const char ** in gw_config */
} Setting;

static const Setting settings[] = {
	{"host", "PGAPP_GATEWAY_HOST", SETTING_NAME, 0, 0, &gw_config.listen_host},
	{"port", "PGAPP_GATEWAY_PORT", SETTING_INT, 0, 65535, &gw_config.port},
	{"db", "PGAPP_GATEWAY_DB", SETTING_TEXT, 0, 0, &gw_config.conninfo},
	{"path", "PGAPP_GATEWAY_PATH", SETTING_TEXT, 0, 0, &gw_config.socket_path},
	{"origins", "PGAPP_GATEWAY_ORIGINS", SETTING_NAME, 0, 0, &gw_config.origins},
	{"anon-role", "PGAPP_GATEWAY_ANON_ROLE", SETTING_NAME, 0, 0, &gw_config.anon_role},
	{"max-connections", "PGAPP_GATEWAY_MAX_CONNECTIONS", SETTING_INT, 1, 1000000, &gw_config.max_connections},
	{"max-message", "PGAPP_GATEWAY_MAX_MESSAGE", SETTING_INT, 256, 16777216, &gw_config.max_message},
	{"max-queue", "PGAPP_GATEWAY_MAX_QUEUE", SETTING_INT, 1024, 1073741824, &gw_config.max_queue},
	{"max-channels", "PGAPP_GATEWAY_MAX_CHANNELS", SETTING_INT, 1, 100000, &gw_config.max_channels},
	{"db-pool", "PGAPP_GATEWAY_DB_POOL", SETTING_INT, 1, 64, &gw_config.db_pool},
	{"idle-timeout", "PGAPP_GATEWAY_IDLE_TIMEOUT", SETTING_INT, 1, 86400, &gw_config.idle_timeout},
	{"verbose", "PGAPP_GATEWAY_VERBOSE", SETTING_INT, 0, 4, &gw_config.verbose},
	{"presence-ttl", "PGAPP_GATEWAY_PRESENCE_TTL", SETTING_INT, 2, 86400, &gw_config.presence_ttl},
	{"rate-limit", "PGAPP_GATEWAY_RATE_LIMIT", SETTING_INT, 0, 1000000, &gw_config.rate_limit},
	{"rate-window", "PGAPP_GATEWAY_RATE_WINDOW", SETTING_INT, 1, 86400, &gw_config.rate_window},
	{"rate-limiter", "PGAPP_GATEWAY_RATE_LIMITER", SETTING_TEXT, 0, 0, &gw_config.rate_limiter},
	{"static", "PGAPP_GATEWAY_STATIC", SETTING_NAME, 0, 0, &gw_config.static_dir},
};

#define NSETTINGS ((int) (sizeof(settings) / sizeof(settings[0])))
#define OPT_CONFIG 1000
#define OPT_HELP 1001
#define OPT_VERSION 1002
#define LINE_MAX_BYTES 16384
#define FILE_VALUES_MAX 1000

static char *file_values[FILE_VALUES_MAX];	/* the --config file's values */
static int	nfile_values;

static void usage(FILE *f);
static void on_signal(int sig);
static void idle_tick(lws_sorted_usec_list_t *sul);

/*
 * Log a line to stderr with the time and level, if the verbosity allows.
 */
void
gw_log(int level, const char *fmt,...)
{
	va_list		ap;
	char		stamp[32];
	time_t		now = time(NULL);
	struct tm	tm;
	static const char *names[] = {"", "error", "warning", "info", "debug"};

	if (level > gw_config.verbose)
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s pgapp-gateway %s: ", stamp, names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *f)
{
	fprintf(f,
			"pgapp-gateway " GW_VERSION ": Phoenix Channels (V2 JSON) over WebSocket, served from PostgreSQL\n"
			"\n"
			"usage: pgapp-gateway [--config FILE] [options]\n"
			"  --config FILE          key = value lines, keys as the options below without --\n"
			"                         (flags override the environment, which overrides the file)\n"
			"                                                                   PGAPP_GATEWAY_CONFIG\n"
			"  --host ADDR            listen address (default: every address)   PGAPP_GATEWAY_HOST\n"
			"  --port N               listen port (default 4000)                PGAPP_GATEWAY_PORT\n"
			"  --db CONNINFO          libpq connection string (default: libpq's PG* variables)\n"
			"                                                                   PGAPP_GATEWAY_DB\n"
			"  --path PATH            Phoenix socket endpoint (default /socket) PGAPP_GATEWAY_PATH\n"
			"  --origins LIST         allowed Origin values, comma-separated, or * (default: none;\n"
			"                         requests without an Origin header are always allowed)\n"
			"                                                                   PGAPP_GATEWAY_ORIGINS\n"
			"  --anon-role ROLE       role for tokens without a role claim (default: refuse them)\n"
			"                                                                   PGAPP_GATEWAY_ANON_ROLE\n"
			"  --max-connections N    WebSocket clients at once (default 10000) PGAPP_GATEWAY_MAX_CONNECTIONS\n"
			"  --max-message BYTES    largest client message (default 65536)    PGAPP_GATEWAY_MAX_MESSAGE\n"
			"  --max-queue BYTES      largest send queue per client (default 1048576)\n"
			"                                                                   PGAPP_GATEWAY_MAX_QUEUE\n"
			"  --max-channels N       channels per socket (default 100)         PGAPP_GATEWAY_MAX_CHANNELS\n"
			"  --db-pool N            database connections for requests (default 2)\n"
			"                                                                   PGAPP_GATEWAY_DB_POOL\n"
			"  --idle-timeout SECS    close a client silent this long (default 60)\n"
			"                                                                   PGAPP_GATEWAY_IDLE_TIMEOUT\n"
			"  --verbose N            0 quiet .. 4 debug (default 3)            PGAPP_GATEWAY_VERBOSE\n"
			"  --presence-ttl SECS    a presence lives this long unrenewed (default 30; renewed\n"
			"                         every half of it)                         PGAPP_GATEWAY_PRESENCE_TTL\n"
			"  --rate-limit N         joins and pushes per window and socket, 0: no limit\n"
			"                         (default 100)                             PGAPP_GATEWAY_RATE_LIMIT\n"
			"  --rate-window SECS     the rate limit's window (default 10)      PGAPP_GATEWAY_RATE_WINDOW\n"
			"  --rate-limiter NAME    pgapp's limiter counting them (default \"default\")\n"
			"                                                                   PGAPP_GATEWAY_RATE_LIMITER\n"
			"  --static DIR           serve DIR's files at / (GET and HEAD; default: none)\n"
			"                                                                   PGAPP_GATEWAY_STATIC\n"
			"  --help, --version\n");
}

static void
on_signal(int sig)
{
	(void) sig;
	stopping = 1;
	if (gw_context)
		lws_cancel_service(gw_context);
}

/*
 * Once a second: close clients that have been silent too long.
 */
static void
idle_tick(lws_sorted_usec_list_t *sul)
{
	gw_idle_check();
	lws_sul_schedule(gw_context, 0, sul, idle_tick, LWS_US_PER_SEC);
}

/*
 * Give setting st the text value, or exit (2) with a message that names
 * where it came from (a flag, a variable, a line of the file).
 */
static void
apply_setting(const Setting *st, const char *value, const char *where)
{
	char	   *end;
	long		v;

	switch (st->kind)
	{
		case SETTING_INT:
			errno = 0;
			v = strtol(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0' || v < st->min || v > st->max)
			{
				fprintf(stderr, "pgapp-gateway: %s must be an integer from %d to %d, not \"%s\"\n",
						where, st->min, st->max, value);
				exit(2);
			}
			*(int *) st->value = (int) v;
			break;
		case SETTING_TEXT:
			*(const char **) st->value = value;
			break;
		case SETTING_NAME:
			*(const char **) st->value = value[0] ? value : NULL;
			break;
	}
}

static const Setting *
find_setting(const char *name)
{
	int			i;

	for (i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

static void
file_error(const char *file, int line, const char *what, const char *arg)
{
	fprintf(stderr, "pgapp-gateway: %s:%d: %s%s%s%s\n", file, line, what,
			arg ? " \"" : "", arg ? arg : "", arg ? "\"" : "");
	exit(2);
}

/*
 * The --config file: one "key = value" a line, the keys being the flags'
 * names without "--"; blank lines and lines starting with # are skipped; a
 * value may be in double quotes (kept as is inside, # included), and an
 * unquoted one runs to the end of the line.
 */
static void
read_file(const char *file)
{
	FILE	   *f = fopen(file, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int			lineno = 0;

	if (f == NULL)
	{
		fprintf(stderr, "pgapp-gateway: cannot read the configuration file \"%s\": %s\n",
				file, strerror(errno));
		exit(2);
	}
	while ((len = getline(&line, &cap, f)) >= 0)
	{
		char	   *k = line;
		char	   *eq;
		char	   *v;
		char	   *e;
		const Setting *st;
		char		where[512];

		lineno++;
		if (len > LINE_MAX_BYTES)
			file_error(file, lineno, "line too long", NULL);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (strlen(line) != (size_t) len)
			file_error(file, lineno, "a NUL byte in the line", NULL);
		while (isspace((unsigned char) *k))
			k++;
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL)
			file_error(file, lineno, "expected key = value, got", k);
		for (e = eq; e > k && isspace((unsigned char) e[-1]); e--)
			;
		*e = '\0';
		v = eq + 1;
		while (isspace((unsigned char) *v))
			v++;
		if (*v == '"')
		{
			char	   *close = strchr(v + 1, '"');

			if (close == NULL)
				file_error(file, lineno, "no closing quote in the value of", k);
			for (e = close + 1; isspace((unsigned char) *e); e++)
				;
			if (*e != '\0' && *e != '#')
				file_error(file, lineno, "text after the closing quote of", k);
			*close = '\0';
			v++;
		}
		else
		{
			for (e = v + strlen(v); e > v && isspace((unsigned char) e[-1]); e--)
				;
			*e = '\0';
		}
		if ((st = find_setting(k)) == NULL)
			file_error(file, lineno, "unknown setting", k);
		if ((v = strdup(v)) == NULL || nfile_values == FILE_VALUES_MAX)
		{
			fprintf(stderr, "pgapp-gateway: %s:%d: %s\n", file, lineno,
					v ? "too many lines" : "out of memory");
			exit(v ? 2 : 1);
		}
		/* kept for the life of the process (and reachable, for leak checkers) */
		file_values[nfile_values++] = v;
		snprintf(where, sizeof(where), "%s:%d: %s", file, lineno, st->name);
		apply_setting(st, v, where);
	}
	if (ferror(f))
	{
		fprintf(stderr, "pgapp-gateway: cannot read the configuration file \"%s\": %s\n",
				file, strerror(errno));
		exit(2);
	}
	free(line);
	fclose(f);
}

/* The environment's settings (PGAPP_GATEWAY_*); an empty variable is unset. */
static void
read_env(void)
{
	int			i;

	for (i = 0; i < NSETTINGS; i++)
	{
		const char *v = getenv(settings[i].env);

		/* PGAPP_GATEWAY_DB="" means libpq's defaults, as --db "" */
		if (v && (*v || settings[i].value == &gw_config.conninfo))
			apply_setting(&settings[i], v, settings[i].env);
	}
}

/*
 * Flags override the environment, which overrides the file: the flags are
 * read first (for --config, --help, --version) and applied last.
 */
static void
read_settings(int argc, char **argv)
{
	struct option opts[NSETTINGS + 4];
	const char **flag_values = calloc((size_t) argc + 1, sizeof(char *));
	int		   *flag_index = calloc((size_t) argc + 1, sizeof(int));
	int			nflags = 0;
	const char *config = getenv("PGAPP_GATEWAY_CONFIG");
	int			c;
	int			i;

	if (flag_values == NULL || flag_index == NULL)
	{
		fprintf(stderr, "pgapp-gateway: out of memory\n");
		exit(1);
	}
	memset(opts, 0, sizeof(opts));
	for (i = 0; i < NSETTINGS; i++)
	{
		opts[i].name = settings[i].name;
		opts[i].has_arg = required_argument;
		opts[i].val = i;
	}
	opts[i].name = "config";
	opts[i].has_arg = required_argument;
	opts[i++].val = OPT_CONFIG;
	opts[i].name = "help";
	opts[i++].val = OPT_HELP;
	opts[i].name = "version";
	opts[i++].val = OPT_VERSION;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c >= 0 && c < NSETTINGS)
		{
			flag_index[nflags] = c;
			flag_values[nflags++] = optarg;
		}
		else if (c == OPT_CONFIG)
			config = optarg;
		else if (c == OPT_HELP)
		{
			usage(stdout);
			exit(0);
		}
		else if (c == OPT_VERSION)
		{
			printf("pgapp-gateway " GW_VERSION "\n");
			exit(0);
		}
		else
		{
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pgapp-gateway: unexpected argument \"%s\"\n", argv[optind]);
		exit(2);
	}
	if (config && *config)
		read_file(config);
	read_env();
	for (i = 0; i < nflags; i++)
	{
		char		where[64];

		snprintf(where, sizeof(where), "--%s", settings[flag_index[i]].name);
		apply_setting(&settings[flag_index[i]], flag_values[i], where);
	}
	free(flag_values);
	free(flag_index);
	if (gw_config.socket_path[0] != '/' || strchr(gw_config.socket_path, '?'))
	{
		fprintf(stderr, "pgapp-gateway: path must start with / and have no query\n");
		exit(2);
	}
	if (gw_config.rate_limiter[0] == '\0')
	{
		fprintf(stderr, "pgapp-gateway: rate-limiter must name a limiter (\"default\" is pgapp's)\n");
		exit(2);
	}
}

/*
 * Draw this process's instance id (gw_instance) and the secret of its rate
 * limit keys (gw_rate_nonce): 64 random bits each, in hex.
 */
static void
draw_instance(void)
{
	unsigned char b[16];
	size_t		got = 0;
	int			i;

	while (got < sizeof(b))
	{
		ssize_t		n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			fprintf(stderr, "pgapp-gateway: cannot draw random bytes: %s\n", strerror(errno));
			exit(1);
		}
		got += (size_t) n;
	}
	for (i = 0; i < 8; i++)
	{
		snprintf(gw_instance + 2 * i, 3, "%02x", b[i]);
		snprintf(gw_rate_nonce + 2 * i, 3, "%02x", b[8 + i]);
	}
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	int			n = 0;

	read_settings(argc, argv);
	draw_instance();

	lws_set_log_level(gw_config.verbose >= GW_DEBUG ? (LLL_ERR | LLL_WARN | LLL_NOTICE) :
					  gw_config.verbose >= GW_ERR ? LLL_ERR : 0, NULL);

	memset(&info, 0, sizeof(info));
	info.port = gw_config.port;
	info.iface = gw_config.listen_host;
	info.protocols = gw_protocols;
	info.mounts = gw_static_mounts();
	/* a client whose handshake stalls is dropped */
	info.timeout_secs = 10;
	/* fds: clients, database connections and some slack */
	info.fd_limit_per_thread = (unsigned int) gw_config.max_connections + 64 + 2 * (unsigned int) gw_config.db_pool;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	gw_context = lws_create_context(&info);
	if (gw_context == NULL)
	{
		gw_log(GW_ERR, "cannot start the server on port %d", gw_config.port);
		return 1;
	}
	gw_vhost = lws_get_vhost_by_name(gw_context, "default");
	if (gw_vhost == NULL)
	{
		gw_log(GW_ERR, "no default vhost");
		lws_context_destroy(gw_context);
		return 1;
	}
	gw_log(GW_INFO, "listening on %s:%d, socket endpoint %s/websocket, instance %s",
		   gw_config.listen_host ? gw_config.listen_host : "*", gw_config.port,
		   gw_config.socket_path, gw_instance);
	if (gw_config.static_dir)
		gw_log(GW_INFO, "serving the files of %s at /", gw_config.static_dir);

	gw_db_start();
	lws_sul_schedule(gw_context, 0, &idle_sul, idle_tick, LWS_US_PER_SEC);

	while (n >= 0 && !stopping)
		n = lws_service(gw_context, 0);

	gw_log(GW_INFO, "stopping");
	gw_stopping = true;
	lws_context_destroy(gw_context);
	return 0;
}
