/*-------------------------------------------------------------------------
 *
 * db.c
 *	  The database side of pgapp-gateway: asynchronous libpq connections
 *	  driven by the libwebsockets event loop.
 *
 * Design: every libpq connection is non-blocking (PQconnectStart,
 * PQsendQuery, PQconsumeInput, PQflush) and its socket is watched by the
 * same poll loop as the clients: a dup() of PQsocket() is adopted into lws
 * as a raw file descriptor (LWS_ADOPT_RAW_FILE_DESC), so "readable" arrives
 * as LWS_CALLBACK_RAW_RX_FILE and "writable" (asked for with
 * lws_callback_on_writable while libpq has output left or while connecting
 * wants to write) as LWS_CALLBACK_RAW_WRITEABLE_FILE.  The dup makes the two
 * owners independent: lws closes its copy when the wsi goes, libpq closes
 * the original in PQfinish.  While connecting, libpq may move to another
 * socket (another address of the host): the adoption follows it.  The loop
 * never waits for the database.
 *
 * Connections:
 * - one listener: LISTENs (through pgapp.subscribe/unsubscribe, so long
 *   topics get pgapp's hashed channel names) for the topics that have
 *   joined sockets, plus "pgapp_channels" (define_channel notifies it), and
 *   loads pgapp.channels.  Its commands run one at a time from a FIFO.  Its
 *   notifications are handed to phoenix.c.
 * - db_pool request connections: token checks, join and handle_in calls,
 *   presence (state, renewals, untracks) and fetching stored broadcasts
 *   (pgapp.message).  Requests wait in one FIFO and run one per connection
 *   at a time.  The listener also reads pgapp.auth_jwt_leeway, with which
 *   tokens are judged expired (ws.c, phoenix.c), and probes pgapp's limiter
 *   once connected: without pgapp preloaded (55000) the rate limit is left
 *   out of the requests, with a warning, rather than failing every one.
 *
 * A join or handle_in runs as PostgREST runs a request: one transaction
 * (one simple-query string without BEGIN is one implicit transaction,
 * rolled back as a whole on error), set_config('role', <role claim>, true),
 * set_config('request.jwt.claims', <claims>, true) and
 * set_config('request.gateway.socket', '<gw_instance>:<socket id>', true)
 * (what pgapp.broadcast_from leaves out), then, when the rate limit is on,
 * pgapp.rate_limit(<the socket's key>, rate_limit, rate_window, 'sliding',
 * 0, rate_limiter), whose PT429 ends the request before the function runs,
 * then the function (on a presence channel, with pgapp.presence_track in the
 * same statement).  Presence's own requests (state, renew, untrack) run as
 * the token too.  All values are quoted with PQescapeLiteral; function
 * names come from pgapp.channels already quoted and schema-qualified.
 * Requests are started from the event loop (a scheduled dispatch), never
 * inside gw_db_submit, so that an answer never re-enters its caller.
 *
 * A lost connection fails its running request (the client gets an error
 * reply) and is retried with a backoff from 100 ms to 5 s (logged at the
 * first tries, then every 5 s).  When the
 * listener comes back it reloads the channels and LISTENs again for every
 * topic that has sockets (notifications sent while it was away are lost).
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "gateway.h"

typedef enum ConnState
{
	CONN_DOWN,
	CONN_CONNECTING,
	CONN_READY,
	CONN_BUSY
} ConnState;

typedef enum CmdKind
{
	CMD_SETUP,					/* LISTEN pgapp_channels + load channels */
	CMD_PROBE_RATE,				/* can pgapp's limiter count (preloaded)? */
	CMD_LISTEN,
	CMD_UNLISTEN
} CmdKind;

typedef struct ListenCmd
{
	CmdKind		kind;
	char	   *topic;
	struct ListenCmd *next;
} ListenCmd;

typedef struct DbConn
{
	int			index;
	bool		listener;
	ConnState	state;
	PGconn	   *pg;
	int			pgfd;			/* PQsocket() the adoption watches */
	struct lws *wsi;
	int			backoff_ms;
	lws_sorted_usec_list_t retry;
	bool		want_write;		/* query output not yet flushed */
	/* what runs */
	DbReq	   *req;
	ListenCmd  *cmd;
	/* its result so far */
	char	   *value;
	bool		value_null;
	char	   *first;			/* first column, when the row has two or more */
	char		sqlstate[6];
	char	   *errmsg;
	char	   *errdetail;
	json_t	   *rows;			/* CMD_SETUP: the channel rows */
} DbConn;

static DbConn listener;
static DbConn *pool;
static int	leeway = -1;		/* pgapp.auth_jwt_leeway, seconds; -1: unknown */
static bool rate_off = false;	/* the limiter cannot count: pgapp is not
								 * preloaded */
static DbReq *req_head;
static DbReq *req_tail;
static int	req_count;
static ListenCmd *cmd_head;
static ListenCmd *cmd_tail;

static lws_sorted_usec_list_t redispatch;

static void conn_start(DbConn *c);
static void conn_fail(DbConn *c, const char *why);
static void conn_pump(DbConn *c);
static void dispatch(void);
static void redispatch_cb(lws_sorted_usec_list_t *sul);
static void listener_next(void);

/*
 * Start every connection (at startup).
 */
void
gw_db_start(void)
{
	int			i;

	listener.index = -1;
	listener.listener = true;
	listener.backoff_ms = 100;
	pool = calloc((size_t) gw_config.db_pool, sizeof(DbConn));
	if (pool == NULL)
	{
		gw_log(GW_ERR, "out of memory");
		exit(1);
	}
	conn_start(&listener);
	for (i = 0; i < gw_config.db_pool; i++)
	{
		pool[i].index = i;
		pool[i].backoff_ms = 100;
		conn_start(&pool[i]);
	}
}

bool
gw_db_connected(void)
{
	int			i;

	if (listener.state < CONN_READY)
		return false;
	for (i = 0; i < gw_config.db_pool; i++)
		if (pool[i].state >= CONN_READY)
			return true;
	return false;
}

int
gw_db_pending(void)
{
	return req_count;
}

/*
 * The database's pgapp.auth_jwt_leeway in seconds (read when the listener
 * connects), or -1 before it is known.
 */
int
gw_db_leeway(void)
{
	return leeway;
}

/* Answer req with an error of our own. */
static void
fail_req(DbReq *req, const char *sqlstate, const char *message)
{
	DbResult	r = {0};

	r.sqlstate = sqlstate;
	r.message = message;
	gw_phx_request_done(req, &r);
}

void
gw_db_req_free(DbReq *req)
{
	if (req->sock)
		gw_sock_unref(req->sock);
	free(req->topic);
	free(req->event);
	free(req->join_ref);
	free(req->ref);
	free(req->sql);
	free(req->fn);
	json_decref(req->payload);
	free(req);
}

static void
queue_global(DbReq *req)
{
	req->next = NULL;
	if (req_tail)
		req_tail->next = req;
	else
		req_head = req;
	req_tail = req;
	req_count++;
}

/*
 * Queue a request; it runs when a request connection is free.  The requests
 * of one socket run one at a time, in the order they came (as a Phoenix
 * channel handles its messages), those of different sockets in parallel.
 */
void
gw_db_submit(DbReq *req)
{
	Sock	   *s = req->sock;

	if (gw_stopping)
	{
		/* the loop has ended: nothing will run any more */
		gw_db_req_free(req);
		return;
	}
	req->next = NULL;
	if (s && s->db_busy)
	{
		if (s->db_wait_tail)
			s->db_wait_tail->next = req;
		else
			s->db_wait_head = req;
		s->db_wait_tail = req;
		return;
	}
	if (s)
		s->db_busy = true;
	queue_global(req);

	/*
	 * Dispatch from the event loop, not from here: a request that fails at
	 * once (a lost connection) is answered there, never inside the caller,
	 * which may be walking the lists the answer changes.
	 */
	lws_sul_schedule(gw_context, 0, &redispatch, redispatch_cb, 1);
}

/*
 * A request of s is done: its next one may go.
 */
static void
sock_next(Sock *s)
{
	DbReq	   *next;

	if (s == NULL)
		return;
	next = s->db_wait_head;
	if (next == NULL)
	{
		s->db_busy = false;
		return;
	}
	s->db_wait_head = next->next;
	if (s->db_wait_head == NULL)
		s->db_wait_tail = NULL;
	queue_global(next);
}

static void
cmd_queue(CmdKind kind, const char *topic)
{
	ListenCmd  *cmd = calloc(1, sizeof(ListenCmd));

	if (cmd == NULL || (topic && (cmd->topic = strdup(topic)) == NULL))
	{
		gw_log(GW_ERR, "out of memory");
		exit(1);
	}
	cmd->kind = kind;
	if (cmd_tail)
		cmd_tail->next = cmd;
	else
		cmd_head = cmd;
	cmd_tail = cmd;
	listener_next();
}

static void
cmd_free(ListenCmd *cmd)
{
	free(cmd->topic);
	free(cmd);
}

/*
 * LISTEN for topic t (its sockets' join replies wait for it).
 */
void
gw_db_listen(Topic *t)
{
	if (t->listen_sent)
		return;
	t->listen_sent = true;
	cmd_queue(CMD_LISTEN, t->name);
}

void
gw_db_unlisten(const char *topic)
{
	cmd_queue(CMD_UNLISTEN, topic);
}

/* ---- connection management ---- */

static void
redispatch_cb(lws_sorted_usec_list_t *sul)
{
	dispatch();
}

static void
retry_cb(lws_sorted_usec_list_t *sul)
{
	DbConn	   *c = lws_container_of(sul, DbConn, retry);

	conn_start(c);
}

/*
 * Watch c's current libpq socket in the event loop (replacing an earlier
 * adoption).
 */
static bool
conn_adopt(DbConn *c)
{
	lws_adopt_desc_t ad;
	int			fd = PQsocket(c->pg);
	int			copy;

	if (c->wsi && fd == c->pgfd)
		return true;
	if (c->wsi)
	{
		lws_set_opaque_user_data(c->wsi, NULL);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		c->wsi = NULL;
	}
	if (fd < 0 || (copy = dup(fd)) < 0)
		return false;
	memset(&ad, 0, sizeof(ad));
	ad.vh = gw_vhost;
	ad.type = LWS_ADOPT_RAW_FILE_DESC;
	ad.fd.filefd = copy;
	ad.vh_prot_name = "phoenix";
	ad.opaque = c;
	c->wsi = lws_adopt_descriptor_vhost_via_info(&ad);
	if (c->wsi == NULL)
	{
		/* lws closes the descriptor when adoption fails */
		return false;
	}
	c->pgfd = fd;
	return true;
}

static void
conn_start(DbConn *c)
{
	c->state = CONN_CONNECTING;
	c->pg = PQconnectStart(gw_config.conninfo);
	if (c->pg == NULL)
	{
		gw_log(GW_ERR, "out of memory");
		exit(1);
	}
	if (PQstatus(c->pg) == CONNECTION_BAD)
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	if (!conn_adopt(c))
	{
		conn_fail(c, "cannot watch the database socket");
		return;
	}
	/* libpq: call PQconnectPoll once the socket is writable */
	lws_callback_on_writable(c->wsi);
}

static void
result_reset(DbConn *c)
{
	free(c->value);
	c->value = NULL;
	c->value_null = false;
	free(c->first);
	c->first = NULL;
	c->sqlstate[0] = '\0';
	free(c->errmsg);
	c->errmsg = NULL;
	free(c->errdetail);
	c->errdetail = NULL;
	json_decref(c->rows);
	c->rows = NULL;
}

/*
 * c is lost (or never came): fail what ran on it and try again later.
 */
static void
conn_fail(DbConn *c, const char *why)
{
	char		msg[512];
	size_t		l;

	snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
	l = strlen(msg);
	while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
		msg[--l] = '\0';
	if (gw_stopping)
	{
		/* lws_context_destroy closes the adopted sockets: just let go */
		if (c->pg)
			PQfinish(c->pg);
		c->pg = NULL;
		c->wsi = NULL;
		c->state = CONN_DOWN;
		return;
	}
	if (c->state != CONN_CONNECTING || c->backoff_ms <= 200 || c->backoff_ms >= 5000)
		gw_log(GW_WARN, "database %s connection %s: %s",
			   c->listener ? "listener" : "request",
			   c->state == CONN_CONNECTING ? "failed" : "lost", msg);
	if (c->wsi)
	{
		lws_set_opaque_user_data(c->wsi, NULL);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		c->wsi = NULL;
	}
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->pgfd = -1;
	c->state = CONN_DOWN;
	c->want_write = false;
	result_reset(c);
	if (c->req)
	{
		DbReq	   *req = c->req;

		c->req = NULL;
		fail_req(req, "08006", "the database connection was lost");
		sock_next(req->sock);
		gw_db_req_free(req);
		/* dispatch on the connections still up (from the event loop) */
		lws_sul_schedule(gw_context, 0, &redispatch, redispatch_cb, 1);
	}
	if (c->listener)
	{
		ListenCmd  *cmd;

		if (c->cmd)
			cmd_free(c->cmd);
		c->cmd = NULL;
		/* every LISTEN is gone with the session: redo them on reconnect */
		while ((cmd = cmd_head) != NULL)
		{
			cmd_head = cmd->next;
			cmd_free(cmd);
		}
		cmd_tail = NULL;
		gw_topics_reset_listening();
	}
	lws_sul_schedule(gw_context, 0, &c->retry, retry_cb, (lws_usec_t) c->backoff_ms * 1000);
	c->backoff_ms = c->backoff_ms * 2 > 5000 ? 5000 : c->backoff_ms * 2;
}

static void
relisten_topic(Topic *t)
{
	if (t->njoins > 0)
	{
		t->listen_sent = false;
		gw_db_listen(t);
	}
}

/*
 * c has just connected.
 */
static void
conn_ready(DbConn *c)
{
	if (PQsetnonblocking(c->pg, 1) != 0)
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	c->state = CONN_READY;
	c->backoff_ms = 100;
	gw_log(GW_INFO, "database %s connection %d ready", c->listener ? "listener" : "request",
		   c->index);
	if (c->listener)
	{
		cmd_queue(CMD_SETUP, NULL);
		if (gw_config.rate_limit > 0)
			cmd_queue(CMD_PROBE_RATE, NULL);
		gw_topics_foreach(relisten_topic);
	}
	else
		dispatch();
}

/*
 * Send sql on c (state becomes BUSY); the result arrives in conn_pump.
 */
static bool
conn_send(DbConn *c, const char *sql)
{
	int			r;

	result_reset(c);
	if (!PQsendQuery(c->pg, sql))
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return false;
	}
	c->state = CONN_BUSY;
	r = PQflush(c->pg);
	if (r < 0)
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return false;
	}
	c->want_write = (r == 1);
	if (c->want_write)
		lws_callback_on_writable(c->wsi);
	return true;
}

/* ---- requests ---- */

/*
 * A growing SQL string; once out of memory it stays failed (data NULL).
 */
typedef struct SqlBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} SqlBuf;

static void
buf_add(SqlBuf *b, const char *text)
{
	size_t		n = strlen(text);

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;
		char	   *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
		{
			free(b->data);
			b->data = NULL;
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, text, n + 1);
	b->len += n;
}

/* text as an SQL literal, quoted for c's connection. */
static void
buf_lit(SqlBuf *b, DbConn *c, const char *text)
{
	char	   *q;

	if (b->failed)
		return;
	q = PQescapeLiteral(c->pg, text, strlen(text));
	if (q == NULL)
	{
		free(b->data);
		b->data = NULL;
		b->failed = true;
		return;
	}
	buf_add(b, q);
	PQfreemem(q);
}

static void buf_fmt(SqlBuf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
buf_fmt(SqlBuf *b, const char *fmt,...)
{
	char		small[256];
	char	   *big;
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t) n < sizeof(small))
	{
		buf_add(b, small);
		return;
	}
	big = n < 0 ? NULL : malloc((size_t) n + 1);
	if (big == NULL)
	{
		free(b->data);
		b->data = NULL;
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t) n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big);
	free(big);
}

/* json (compact) as an SQL literal. */
static void
buf_json(SqlBuf *b, DbConn *c, json_t *json)
{
	char	   *dumped = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);

	if (dumped == NULL)
	{
		free(b->data);
		b->data = NULL;
		b->failed = true;
		return;
	}
	buf_lit(b, c, dumped);
	free(dumped);
}

/*
 * The first statement of a request that runs as the socket's token, as
 * PostgREST runs one: its role and claims, and the socket
 * (request.gateway.socket, which pgapp.broadcast_from reads), all
 * transaction-local.
 */
static void
buf_as_token(SqlBuf *b, DbConn *c, Sock *s)
{
	buf_add(b, "SELECT pg_catalog.set_config('role', ");
	buf_lit(b, c, s->role);
	buf_add(b, ", true), pg_catalog.set_config('request.jwt.claims', ");
	buf_lit(b, c, s->claims);
	buf_fmt(b, ", true), pg_catalog.set_config('request.gateway.socket', '%s:%llu', true);",
			gw_instance, (unsigned long long) s->id);
}

/*
 * The rate limit of a socket's joins and pushes, through pgapp's limiter:
 * pgapp.rate_limit raises PT429 (and the request stops there) when the
 * socket is over it.  The key has a secret part (gw_rate_nonce), so that no
 * one else can count against it.
 */
static void
buf_rate_limit(SqlBuf *b, DbConn *c, Sock *s)
{
	char		key[96];

	if (gw_config.rate_limit <= 0 || rate_off)
		return;
	snprintf(key, sizeof(key), "pgapp-gateway:%s:%llu", gw_rate_nonce, (unsigned long long) s->id);
	buf_add(b, "SELECT pgapp.rate_limit(");
	buf_lit(b, c, key);
	buf_fmt(b, ", %d, %d, 'sliding', 0, ", gw_config.rate_limit, gw_config.rate_window);
	buf_lit(b, c, gw_config.rate_limiter);
	buf_add(b, ");");
}

/*
 * The SQL of req, quoted for c's connection; NULL when out of memory.
 */
static char *
build_sql(DbConn *c, DbReq *req)
{
	SqlBuf		b = {0};
	Sock	   *s = req->sock;
	size_t		i;

	switch (req->kind)
	{
		case DBREQ_AUTH:
			buf_add(&b, "SELECT pgapp.decode_token(");
			buf_lit(&b, c, json_string_value(req->payload));
			buf_add(&b, ")::text");
			break;
		case DBREQ_MESSAGE:
			buf_add(&b, "SELECT pgapp.message(");
			buf_lit(&b, c, json_string_value(req->payload));
			buf_add(&b, "::uuid)::text");
			break;
		case DBREQ_JOIN:
			buf_as_token(&b, c, s);
			buf_rate_limit(&b, c, s);
			if (!req->track)
			{
				buf_fmt(&b, "SELECT %s(", req->fn);
				buf_lit(&b, c, req->topic);
				buf_add(&b, "::text, ");
				buf_json(&b, c, req->payload);
				buf_add(&b, "::jsonb)::text");
				break;
			}

			/*
			 * A presence channel: a join that lets the socket in also tracks
			 * it, in the same transaction, with the meta the join returned
			 * under "presence"; first comes "<ref> <meta>", the meta as the
			 * database writes it (renewals send it back as it is, so that the
			 * database never sees it change).
			 */
			buf_fmt(&b, "WITH j AS (SELECT %s(", req->fn);
			buf_lit(&b, c, req->topic);
			buf_add(&b, "::text, ");
			buf_json(&b, c, req->payload);
			buf_add(&b, "::jsonb) AS r) "
					"SELECT CASE WHEN pg_catalog.jsonb_typeof(j.r) = 'object' AND j.r ? 'ok'"
					" AND pg_catalog.jsonb_typeof(coalesce(j.r -> 'presence', '{}')) = 'object'"
					" THEN pgapp.presence_track(");
			buf_lit(&b, c, req->topic);
			buf_add(&b, ", ");
			buf_lit(&b, c, s->sub);
			buf_fmt(&b, ", coalesce(j.r -> 'presence', '{}'), pg_catalog.make_interval(secs => %d))::text"
					" || ' ' || coalesce(j.r -> 'presence', '{}')::text END, j.r::text FROM j",
					gw_config.presence_ttl);
			break;
		case DBREQ_HANDLE_IN:
			buf_as_token(&b, c, s);
			buf_rate_limit(&b, c, s);
			buf_fmt(&b, "SELECT %s(", req->fn);
			buf_lit(&b, c, req->topic);
			buf_add(&b, "::text, ");
			buf_lit(&b, c, req->event);
			buf_add(&b, "::text, ");
			buf_json(&b, c, req->payload);
			buf_add(&b, "::jsonb)::text");
			break;
		case DBREQ_PRESENCE_STATE:
			buf_as_token(&b, c, s);
			buf_add(&b, "SELECT pgapp.presence_list(");
			buf_lit(&b, c, req->topic);
			buf_add(&b, ")::text");
			break;
		case DBREQ_PRESENCE_RENEW:
			/* payload: [[topic, meta, ref], ...], all of one socket */
			buf_as_token(&b, c, s);
			buf_add(&b, "SELECT pg_catalog.count(pgapp.presence_track(v.t, ");
			buf_lit(&b, c, s->sub);
			buf_fmt(&b, ", v.m::jsonb, pg_catalog.make_interval(secs => %d), v.r::uuid))"
					" FROM (VALUES ", gw_config.presence_ttl);
			for (i = 0; i < json_array_size(req->payload); i++)
			{
				json_t	   *e = json_array_get(req->payload, i);

				buf_add(&b, i ? ", (" : "(");
				buf_lit(&b, c, json_string_value(json_array_get(e, 0)));
				buf_add(&b, ", ");
				buf_lit(&b, c, json_string_value(json_array_get(e, 1)));
				buf_add(&b, ", ");
				buf_lit(&b, c, json_string_value(json_array_get(e, 2)));
				buf_add(&b, ")");
			}
			buf_add(&b, ") AS v(t, m, r)");
			break;
		case DBREQ_PRESENCE_UNTRACK:
			buf_as_token(&b, c, s);
			buf_add(&b, "SELECT pgapp.presence_untrack(");
			buf_lit(&b, c, req->topic);
			buf_add(&b, ", ");
			buf_lit(&b, c, s->sub);
			buf_add(&b, ", ");
			buf_lit(&b, c, json_string_value(req->payload));
			buf_add(&b, "::uuid)");
			break;
	}
	return b.failed ? NULL : b.data;
}

/*
 * Start queued requests on free connections.
 */
static void
dispatch(void)
{
	int			i;

	for (i = 0; i < gw_config.db_pool && req_head; i++)
	{
		DbConn	   *c = &pool[i];
		DbReq	   *req;

		if (c->state != CONN_READY)
			continue;
		req = req_head;
		req_head = req->next;
		if (req_head == NULL)
			req_tail = NULL;
		req_count--;
		req->next = NULL;
		/* a socket gone meanwhile needs no answer (but its untracks run) */
		if (req->sock && req->sock->wsi == NULL && !req->always)
		{
			sock_next(req->sock);
			gw_db_req_free(req);
			i--;
			continue;
		}
		req->sql = build_sql(c, req);
		if (req->sql == NULL)
		{
			fail_req(req, "53200", "out of memory");
			sock_next(req->sock);
			gw_db_req_free(req);
			i--;
			continue;
		}
		c->req = req;
		if (!conn_send(c, req->sql))
			return;				/* conn_fail answered it */
	}
}

static void
request_finished(DbConn *c)
{
	DbReq	   *req = c->req;

	c->req = NULL;
	c->state = CONN_READY;
	if (req)
	{
		DbResult	r = {0};

		if (c->sqlstate[0])
		{
			r.sqlstate = c->sqlstate;
			r.message = c->errmsg ? c->errmsg : "error";
			r.detail = c->errdetail;
		}
		else
		{
			r.value = c->value_null ? NULL : c->value;
			r.first = c->first;
		}
		gw_phx_request_done(req, &r);
		sock_next(req->sock);
		gw_db_req_free(req);
	}
	result_reset(c);
	dispatch();
}

/* ---- listener commands ---- */

static void
listener_next(void)
{
	ListenCmd  *cmd;
	char	   *a = NULL;
	char	   *sql = NULL;

	if (listener.state != CONN_READY || cmd_head == NULL)
		return;
	cmd = cmd_head;
	cmd_head = cmd->next;
	if (cmd_head == NULL)
		cmd_tail = NULL;
	listener.cmd = cmd;
	switch (cmd->kind)
	{
		case CMD_SETUP:
			sql = strdup("LISTEN pgapp_channels;"
						 "SELECT r.rolsuper, coalesce(pg_catalog.date_part('epoch',"
						 "  pg_catalog.current_setting('pgapp.auth_jwt_leeway', true)::interval)::int, 30)"
						 " FROM pg_catalog.pg_roles AS r"
						 " WHERE r.rolname = current_user;"
						 "SELECT c.pattern,"
						 " pg_catalog.format('%I.%I', jn.nspname, jp.proname),"
						 " CASE WHEN hp.oid IS NOT NULL"
						 "  THEN pg_catalog.format('%I.%I', hn.nspname, hp.proname) END,"
						 " c.presence"
						 " FROM pgapp.channels AS c"
						 " JOIN pg_catalog.pg_proc AS jp ON jp.oid = c.join_function"
						 " JOIN pg_catalog.pg_namespace AS jn ON jn.oid = jp.pronamespace"
						 " LEFT JOIN pg_catalog.pg_proc AS hp ON hp.oid = c.handle_in_function"
						 " LEFT JOIN pg_catalog.pg_namespace AS hn ON hn.oid = hp.pronamespace");
			break;
		case CMD_PROBE_RATE:
			/* a key of its own, with limits no socket uses */
			if (asprintf(&sql, "SELECT pgapp.check_rate('pgapp-gateway:%s:probe', 1000000, 1)",
						 gw_rate_nonce) < 0)
				sql = NULL;
			break;
		case CMD_LISTEN:
		case CMD_UNLISTEN:
			a = PQescapeLiteral(listener.pg, cmd->topic, strlen(cmd->topic));
			if (a && asprintf(&sql, "SELECT pgapp.%s(%s)",
							  cmd->kind == CMD_LISTEN ? "subscribe" : "unsubscribe", a) < 0)
				sql = NULL;
			PQfreemem(a);
			break;
	}
	if (sql == NULL)
	{
		gw_log(GW_ERR, "out of memory");
		exit(1);
	}
	conn_send(&listener, sql);
	free(sql);
}

/*
 * Is an UNLISTEN of topic waiting?  Then a LISTEN that just finished was for
 * an earlier Topic of that name, dropped since: a new one of the same name
 * is listening only once its own LISTEN, queued after the UNLISTEN, is done.
 */
static bool
unlisten_queued(const char *topic)
{
	ListenCmd  *cmd;

	for (cmd = cmd_head; cmd; cmd = cmd->next)
		if (cmd->kind == CMD_UNLISTEN && strcmp(cmd->topic, topic) == 0)
			return true;
	return false;
}

static void
cmd_finished(DbConn *c)
{
	ListenCmd  *cmd = c->cmd;
	bool		ok = c->sqlstate[0] == '\0';

	c->cmd = NULL;
	c->state = CONN_READY;
	if (cmd)
	{
		if (cmd->kind == CMD_PROBE_RATE)
		{
			/*
			 * Without pgapp in shared_preload_libraries the limiter has no
			 * shared memory (55000): every join and push would fail on it. Go
			 * on without the rate limit, and say so.
			 */
			bool		off = !ok && strcmp(c->sqlstate, "55000") == 0;

			if (off && !rate_off)
				gw_log(GW_WARN, "the rate limit is off: pgapp's limiter cannot count (%s); "
					   "add pgapp to shared_preload_libraries", c->errmsg ? c->errmsg : "55000");
			else if (!ok && !off)
				gw_log(GW_WARN, "database listener: probing the rate limit: %s",
					   c->errmsg ? c->errmsg : "error");
			rate_off = off;
		}
		else if (!ok)
			gw_log(GW_WARN, "database listener: %s%s%s: %s",
				   cmd->kind == CMD_SETUP ? "loading channels" :
				   cmd->kind == CMD_LISTEN ? "LISTEN " : "UNLISTEN ",
				   cmd->topic ? "" : "", cmd->topic ? cmd->topic : "",
				   c->errmsg ? c->errmsg : "error");
		if (cmd->kind == CMD_SETUP && ok && c->rows)
			gw_channels_load(c->rows);
		else if (cmd->kind == CMD_LISTEN && !unlisten_queued(cmd->topic))
		{
			Topic	   *t = gw_topic_find(cmd->topic);

			if (ok)
				gw_log(GW_DEBUG, "LISTEN %s done", cmd->topic);
			if (t)
			{
				t->listening = ok;
				if (!ok)
					t->listen_sent = false;
				gw_phx_listen_done(t, ok);
			}
		}
		cmd_free(cmd);
	}
	result_reset(c);
	listener_next();
}

/* ---- reading results ---- */

static void
take_result(DbConn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK)
	{
		if (c->listener && c->cmd && c->cmd->kind == CMD_SETUP && PQnfields(res) == 4)
		{
			int			i;

			json_decref(c->rows);
			c->rows = json_array();
			for (i = 0; i < PQntuples(res); i++)
			{
				json_t	   *row = json_pack("{s:s, s:s, s:o, s:b}",
											"pattern", PQgetvalue(res, i, 0),
											"join", PQgetvalue(res, i, 1),
											"handle_in", PQgetisnull(res, i, 2) ? json_null() :
											json_string(PQgetvalue(res, i, 2)),
											"presence", strcmp(PQgetvalue(res, i, 3), "t") == 0);

				if (row)
					json_array_append_new(c->rows, row);
			}
		}
		else if (c->listener && c->cmd && c->cmd->kind == CMD_SETUP && PQnfields(res) == 2 &&
				 PQntuples(res) == 1)
		{
			if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
				gw_log(GW_WARN, "connected as a superuser: a token may name any role, superusers "
					   "included; log in as an authenticator role (LOGIN NOINHERIT, member of "
					   "the token roles only)");
			leeway = atoi(PQgetvalue(res, 0, 1));
		}
		else if (PQntuples(res) > 0 && PQnfields(res) > 0)
		{
			int			last = PQnfields(res) - 1;

			free(c->value);
			c->value = NULL;
			free(c->first);
			c->first = NULL;
			c->value_null = PQgetisnull(res, 0, last);
			if (!c->value_null)
				c->value = strdup(PQgetvalue(res, 0, last));
			if (last > 0 && !PQgetisnull(res, 0, 0))
				c->first = strdup(PQgetvalue(res, 0, 0));
		}
	}
	else if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

		if (st == PGRES_FATAL_ERROR && c->sqlstate[0] == '\0')
		{
			snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "XX000");
			free(c->errmsg);
			c->errmsg = strdup(msg ? msg : PQerrorMessage(c->pg));
			free(c->errdetail);
			c->errdetail = detail ? strdup(detail) : NULL;
		}
	}
}

static void
notifications(DbConn *c)
{
	PGnotify   *n;

	while ((n = PQnotifies(c->pg)) != NULL)
	{
		if (strcmp(n->relname, "pgapp_channels") == 0)
		{
			bool		queued = false;
			ListenCmd  *cmd;

			for (cmd = cmd_head; cmd; cmd = cmd->next)
				if (cmd->kind == CMD_SETUP)
					queued = true;
			if (!queued)
				cmd_queue(CMD_SETUP, NULL);
		}
		else if (c->listener)
			gw_phx_deliver(n->extra, 0);
		PQfreemem(n);
	}
}

/*
 * Make progress on c after its socket became readable or writable.
 */
static void
conn_pump(DbConn *c)
{
	if (c->state == CONN_CONNECTING)
	{
		PostgresPollingStatusType st = PQconnectPoll(c->pg);

		if (st == PGRES_POLLING_FAILED)
		{
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		if (!conn_adopt(c))
		{
			conn_fail(c, "cannot watch the database socket");
			return;
		}
		if (st == PGRES_POLLING_OK)
			conn_ready(c);
		else if (st == PGRES_POLLING_WRITING)
			lws_callback_on_writable(c->wsi);
		return;
	}
	if (c->state == CONN_DOWN || c->pg == NULL)
		return;
	if (c->want_write)
	{
		int			r = PQflush(c->pg);

		if (r < 0)
		{
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		c->want_write = (r == 1);
		if (c->want_write)
			lws_callback_on_writable(c->wsi);
	}
	if (!PQconsumeInput(c->pg))
	{
		conn_fail(c, PQerrorMessage(c->pg));
		return;
	}
	while (c->state == CONN_BUSY && !PQisBusy(c->pg))
	{
		PGresult   *res = PQgetResult(c->pg);

		if (res == NULL)
		{
			if (c->listener)
				cmd_finished(c);
			else
				request_finished(c);
			break;
		}
		take_result(c, res);
		PQclear(res);
	}
	if (c->pg)
		notifications(c);
	if (c->pg && PQstatus(c->pg) == CONNECTION_BAD)
		conn_fail(c, PQerrorMessage(c->pg));
}

/*
 * The lws callbacks of the adopted database sockets (ws.c passes on what it
 * does not handle).
 */
int
gw_db_callback(struct lws *wsi, enum lws_callback_reasons reason,
			   void *user, void *in, size_t len)
{
	DbConn	   *c;

	(void) user;
	(void) in;
	(void) len;
	switch (reason)
	{
		case LWS_CALLBACK_RAW_RX_FILE:
		case LWS_CALLBACK_RAW_WRITEABLE_FILE:
			c = lws_get_opaque_user_data(wsi);
			if (c == NULL || c->wsi != wsi)
				return 0;
			conn_pump(c);
			return 0;
		case LWS_CALLBACK_RAW_CLOSE_FILE:
			c = lws_get_opaque_user_data(wsi);
			if (c && c->wsi == wsi)
			{
				/* closed by lws itself (hang-up): the connection is gone */
				c->wsi = NULL;
				conn_fail(c, "the database socket was closed");
			}
			return 0;
		default:
			return 0;
	}
}
