/*-------------------------------------------------------------------------
 *
 * main.c
 *	  pgapp-gateway: settings, the libwebsockets context and the event loop.
 *
 * Settings come from flags, else from PGAPP_GATEWAY_* environment
 * variables, else from the defaults below (docs/gateway.md lists them).
 * The program runs one libwebsockets context with one vhost and the poll
 * event loop on one thread; SIGINT and SIGTERM stop the loop, which closes
 * every client and database connection before exiting.
 *
 *-------------------------------------------------------------------------
 */
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
	.static_dir = NULL,
};

char		gw_instance[17];
struct lws_context *gw_context;
struct lws_vhost *gw_vhost;
bool		gw_stopping;

static volatile sig_atomic_t stopping;
static lws_sorted_usec_list_t idle_sul;

static void usage(FILE *f);
static int	int_setting(const char *name, const char *value, int min, int max);
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
			"usage: pgapp-gateway [options]\n"
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
			"  --static DIR           serve DIR's files at / (GET and HEAD; default: none)\n"
			"                                                                   PGAPP_GATEWAY_STATIC\n"
			"  --help, --version\n");
}

/*
 * An integer setting within [min, max], or exit with a message.
 */
static int
int_setting(const char *name, const char *value, int min, int max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
	{
		fprintf(stderr, "pgapp-gateway: %s must be an integer from %d to %d, not \"%s\"\n",
				name, min, max, value);
		exit(2);
	}
	return (int) v;
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

/* Settings from the environment first, so that flags override them. */
static void
read_env(void)
{
	const char *v;

	if ((v = getenv("PGAPP_GATEWAY_HOST")) && *v)
		gw_config.listen_host = v;
	if ((v = getenv("PGAPP_GATEWAY_PORT")) && *v)
		gw_config.port = int_setting("PGAPP_GATEWAY_PORT", v, 0, 65535);
	if ((v = getenv("PGAPP_GATEWAY_DB")))
		gw_config.conninfo = v;
	if ((v = getenv("PGAPP_GATEWAY_PATH")) && *v)
		gw_config.socket_path = v;
	if ((v = getenv("PGAPP_GATEWAY_ORIGINS")) && *v)
		gw_config.origins = v;
	if ((v = getenv("PGAPP_GATEWAY_ANON_ROLE")) && *v)
		gw_config.anon_role = v;
	if ((v = getenv("PGAPP_GATEWAY_MAX_CONNECTIONS")) && *v)
		gw_config.max_connections = int_setting("PGAPP_GATEWAY_MAX_CONNECTIONS", v, 1, 1000000);
	if ((v = getenv("PGAPP_GATEWAY_MAX_MESSAGE")) && *v)
		gw_config.max_message = int_setting("PGAPP_GATEWAY_MAX_MESSAGE", v, 256, 16777216);
	if ((v = getenv("PGAPP_GATEWAY_MAX_QUEUE")) && *v)
		gw_config.max_queue = int_setting("PGAPP_GATEWAY_MAX_QUEUE", v, 1024, 1073741824);
	if ((v = getenv("PGAPP_GATEWAY_MAX_CHANNELS")) && *v)
		gw_config.max_channels = int_setting("PGAPP_GATEWAY_MAX_CHANNELS", v, 1, 100000);
	if ((v = getenv("PGAPP_GATEWAY_DB_POOL")) && *v)
		gw_config.db_pool = int_setting("PGAPP_GATEWAY_DB_POOL", v, 1, 64);
	if ((v = getenv("PGAPP_GATEWAY_IDLE_TIMEOUT")) && *v)
		gw_config.idle_timeout = int_setting("PGAPP_GATEWAY_IDLE_TIMEOUT", v, 1, 86400);
	if ((v = getenv("PGAPP_GATEWAY_VERBOSE")) && *v)
		gw_config.verbose = int_setting("PGAPP_GATEWAY_VERBOSE", v, 0, 4);
	if ((v = getenv("PGAPP_GATEWAY_STATIC")) && *v)
		gw_config.static_dir = v;
}

static void
read_flags(int argc, char **argv)
{
	static const struct option opts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"db", required_argument, NULL, 'd'},
		{"path", required_argument, NULL, 'P'},
		{"origins", required_argument, NULL, 'o'},
		{"anon-role", required_argument, NULL, 'a'},
		{"max-connections", required_argument, NULL, 'c'},
		{"max-message", required_argument, NULL, 'm'},
		{"max-queue", required_argument, NULL, 'q'},
		{"max-channels", required_argument, NULL, 'C'},
		{"db-pool", required_argument, NULL, 'n'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"verbose", required_argument, NULL, 'v'},
		{"static", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'H':
				gw_config.listen_host = optarg;
				break;
			case 'p':
				gw_config.port = int_setting("--port", optarg, 0, 65535);
				break;
			case 'd':
				gw_config.conninfo = optarg;
				break;
			case 'P':
				gw_config.socket_path = optarg;
				break;
			case 'o':
				gw_config.origins = optarg;
				break;
			case 'a':
				gw_config.anon_role = optarg;
				break;
			case 'c':
				gw_config.max_connections = int_setting("--max-connections", optarg, 1, 1000000);
				break;
			case 'm':
				gw_config.max_message = int_setting("--max-message", optarg, 256, 16777216);
				break;
			case 'q':
				gw_config.max_queue = int_setting("--max-queue", optarg, 1024, 1073741824);
				break;
			case 'C':
				gw_config.max_channels = int_setting("--max-channels", optarg, 1, 100000);
				break;
			case 'n':
				gw_config.db_pool = int_setting("--db-pool", optarg, 1, 64);
				break;
			case 'i':
				gw_config.idle_timeout = int_setting("--idle-timeout", optarg, 1, 86400);
				break;
			case 'v':
				gw_config.verbose = int_setting("--verbose", optarg, 0, 4);
				break;
			case 's':
				gw_config.static_dir = optarg;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			case 'V':
				printf("pgapp-gateway " GW_VERSION "\n");
				exit(0);
			default:
				usage(stderr);
				exit(2);
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pgapp-gateway: unexpected argument \"%s\"\n", argv[optind]);
		exit(2);
	}
	if (gw_config.socket_path[0] != '/' || strchr(gw_config.socket_path, '?'))
	{
		fprintf(stderr, "pgapp-gateway: --path must start with / and have no query\n");
		exit(2);
	}
}

/*
 * Draw this process's instance id (gw_instance): 64 random bits in hex.
 */
static void
draw_instance(void)
{
	unsigned char b[8];
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
		snprintf(gw_instance + 2 * i, 3, "%02x", b[i]);
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	int			n = 0;

	read_env();
	read_flags(argc, argv);
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
	gw_log(GW_INFO, "listening on %s:%d, socket endpoint %s/websocket",
		   gw_config.listen_host ? gw_config.listen_host : "*", gw_config.port,
		   gw_config.socket_path);
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
