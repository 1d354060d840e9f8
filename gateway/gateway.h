/*-------------------------------------------------------------------------
 *
 * gateway.h
 *	  Types and functions shared by the files of pgapp-gateway.
 *
 * pgapp-gateway is a single-threaded program: one libwebsockets event loop
 * (poll) serves the HTTP and WebSocket clients AND the database, whose libpq
 * sockets are adopted into the same loop (db.c).  Nothing here is locked:
 * every function runs on the loop's thread, one callback at a time.
 *
 * Ownership: a Sock (one WebSocket client) is freed when the connection is
 * closed AND no database request refers to it any more (refs).  An OutMsg
 * (one encoded frame) is shared by every socket it is queued on and freed
 * with its last reference.
 *
 * gateway/README.md says how the pieces fit together.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAPP_GATEWAY_H
#define PGAPP_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libwebsockets.h>

#define GW_VERSION "0.3.0"

/*
 * Settings (main.c): flags, else environment, else the --config file, else
 * these defaults.
 */
typedef struct GwConfig
{
	const char *listen_host;	/* NULL: every address */
	int			port;
	const char *conninfo;		/* libpq connection string */
	const char *socket_path;	/* the Phoenix endpoint, "/socket" */
	const char *origins;		/* comma-separated allowed Origin values, or
								 * "*" */
	const char *anon_role;		/* role for tokens without a role claim */
	int			max_connections;	/* WebSocket clients at once */
	int			max_message;	/* bytes of one client message (and frame) */
	int			max_queue;		/* bytes waiting to be sent to one client */
	int			max_channels;	/* channels one socket may join */
	int			db_pool;		/* request connections */
	int			idle_timeout;	/* seconds without a message from a client */
	int			verbose;
	int			presence_ttl;	/* seconds a presence lives unrenewed */
	int			rate_limit;		/* joins and pushes per window and socket; 0:
								 * none */
	int			rate_window;	/* seconds */
	const char *rate_limiter;	/* pgapp's limiter the counts go to */
	const char *static_dir;		/* --static: files served at "/", or NULL */
} GwConfig;

extern GwConfig gw_config;

/*
 * This process's identity, 16 random hexadecimal digits drawn at start: a
 * socket is "<gw_instance>:<its id>" in request.gateway.socket and in the
 * sender of pgapp.broadcast_from's messages, so that gateways sharing a
 * database tell their sockets apart.
 */
extern char gw_instance[17];

/*
 * 16 more random hexadecimal digits, never sent anywhere but in the keys of
 * the rate limit (pgapp.rate_limit(key, ...)), so that no one else can
 * count against a socket's key.
 */
extern char gw_rate_nonce[17];
extern struct lws_context *gw_context;
extern struct lws_vhost *gw_vhost;
extern bool gw_stopping;		/* the loop has ended: tear down quietly */

/* One frame as sent on the wire, shared by the sockets it is queued on. */
typedef struct OutMsg
{
	int			refs;
	size_t		len;
	unsigned char data[];
} OutMsg;

typedef struct OutNode
{
	OutMsg	   *msg;
	struct OutNode *next;
} OutNode;

typedef struct Topic Topic;

/* A channel a socket has joined (or is joining). */
typedef struct Join
{
	struct Sock *sock;
	Topic	   *topic;
	char	   *join_ref;		/* the client's join_ref, NULL-safe string */
	char	   *ref;			/* the ref of the phx_join push */
	bool		joined;			/* false while the join function runs */
	json_t	   *reply;			/* join's ok response, until it is sent */
	struct DbReq *held;			/* the join request, until the topic is
								 * LISTENed (then it is submitted) */
	struct OutMsg **kept;		/* the topic's messages that came while the
								 * join function ran, sent after the reply */
	int			nkept;
	size_t		kept_bytes;
	bool		presence;		/* the channel tracks presence */
	char	   *presence_ref;	/* the tracked meta's ref (uuid), or NULL */
	char	   *presence_meta;	/* its meta, JSON text, for renewals */
	time_t		renew_at;		/* when to renew it */
	struct Join *next_in_sock;
	struct Join *next_in_topic;
	struct Join *prev_in_topic;
} Join;

/* Authentication state of a socket. */
typedef enum SockAuth
{
	SOCK_AUTH_PENDING,			/* decode_token is running */
	SOCK_AUTH_OK,
	SOCK_AUTH_REFUSED
} SockAuth;

typedef struct Sock
{
	struct lws *wsi;			/* NULL once closed */
	int			refs;			/* the connection + pending requests */
	uint64_t	id;
	SockAuth	auth;
	char	   *token;			/* until verified */
	char	   *claims;			/* the verified claims, JSON text */
	char	   *role;			/* the role requests run as */
	char	   *sub;			/* the claims' sub (the presence key), or NULL */
	double		exp;			/* the claims' exp (Unix seconds), 0: none */
	/* the message being received (fragments) */
	char	   *rx;
	size_t		rx_len;
	size_t		rx_cap;
	/* messages received before authentication finished */
	json_t	   *held;			/* array of frames, bounded */
	size_t		held_bytes;
	/* send queue */
	OutNode    *out_head;
	OutNode    *out_tail;
	size_t		out_bytes;
	int			out_count;
	bool		closing;		/* close requested: stop queueing */
	int			close_code;
	const char *close_reason;
	Join	   *joins;
	int			njoins;
	int			inflight;		/* handle_in requests running or queued */
	int			joining;		/* join requests running or queued */
	bool		db_busy;		/* one of its requests is queued or running */
	struct DbReq *db_wait_head; /* its next requests, in order */
	struct DbReq *db_wait_tail;
	time_t		last_rx;
	struct Sock *next_all;
	struct Sock *prev_all;
} Sock;

struct Topic
{
	char	   *name;
	Join	   *joins;			/* doubly linked through next/prev_in_topic */
	int			njoins;
	bool		listening;		/* LISTEN confirmed on the database */
	bool		listen_sent;	/* LISTEN queued or running */
	Topic	   *next_hash;
};

/* A channel definition, from pgapp.channels. */
typedef struct ChannelDef
{
	char	   *pattern;
	bool		prefix;			/* pattern ended in '*' */
	size_t		prefix_len;
	char	   *join_fn;		/* quoted, schema-qualified name */
	char	   *handle_in_fn;	/* NULL: none */
	bool		presence;
} ChannelDef;

/* main.c */
extern void gw_log(int level, const char *fmt,...) __attribute__((format(printf, 2, 3)));

#define GW_ERR	1
#define GW_WARN 2
#define GW_INFO 3
#define GW_DEBUG 4

/* ws.c */
extern int	gw_socket_count;
extern uint64_t gw_frames_in;
extern uint64_t gw_frames_out;
extern uint64_t gw_slow_closed;
extern const struct lws_protocols gw_protocols[];
extern OutMsg *gw_msg_new(const char *text, size_t len);
extern void gw_msg_unref(OutMsg *m);
extern void gw_sock_send(Sock *s, OutMsg *m);
extern void gw_sock_send_json(Sock *s, json_t *frame);
extern void gw_sock_close(Sock *s, int code, const char *reason);
extern void gw_sock_unref(Sock *s);
extern json_t *gw_frame(const char *join_ref, const char *ref, const char *topic,
						const char *event, json_t *payload);
extern void gw_reply(Sock *s, const char *join_ref, const char *ref, const char *topic,
					 const char *status, json_t *response);
extern void gw_idle_check(void);
extern const char *gw_token_precheck(const char *token);

/* phoenix.c */
extern void gw_phx_message(Sock *s, const char *text, size_t len);
extern void gw_phx_auth_done(Sock *s, const char *claims, const char *error);
extern void gw_phx_sock_closed(Sock *s);
extern void gw_phx_sock_tick(Sock *s, time_t now);
extern void gw_phx_deliver(const char *envelope, uint64_t exclude);
extern Topic *gw_topic_find(const char *name);
extern int	gw_topic_count(void);
extern void gw_topics_foreach(void (*fn) (Topic *t));
extern void gw_topics_reset_listening(void);

/* channels.c */
extern const ChannelDef *gw_channel_match(const char *topic);
extern void gw_channels_load(json_t *rows);
extern int	gw_channel_count(void);

/* static.c */
extern const struct lws_http_mount *gw_static_mounts(void);
extern int	gw_static_filter(struct lws *wsi, const char *uri);
extern int	gw_static_headers(struct lws *wsi, void *in);
extern int	gw_static_file_done(struct lws *wsi);

/* db.c */
typedef enum DbReqKind
{
	DBREQ_AUTH,					/* decode_token */
	DBREQ_JOIN,					/* the channel's join function (and presence
								 * track) */
	DBREQ_HANDLE_IN,			/* the channel's handle_in function */
	DBREQ_MESSAGE,				/* pgapp.message(id) for a stored broadcast */
	DBREQ_PRESENCE_STATE,		/* pgapp.presence_list(topic) after a join */
	DBREQ_PRESENCE_RENEW,		/* presence_track of a socket's metas, by ref */
	DBREQ_PRESENCE_UNTRACK		/* presence_untrack of one meta */
} DbReqKind;

typedef struct DbReq
{
	DbReqKind	kind;
	Sock	   *sock;			/* holds a reference; NULL for MESSAGE */
	char	   *topic;
	char	   *event;
	char	   *join_ref;
	char	   *ref;
	char	   *sql;			/* built when dispatched */
	json_t	   *payload;		/* params / payload / token (string) / id */
	char	   *fn;				/* the function to call (JOIN, HANDLE_IN) */
	uint64_t	exclude;		/* MESSAGE: the socket not to deliver to, or 0 */
	bool		track;			/* JOIN: track the socket's presence */
	bool		always;			/* run even once the socket has closed */
	struct DbReq *next;
} DbReq;

/* What a request gave (gw_phx_request_done). */
typedef struct DbResult
{
	const char *value;			/* the last column of the last row returned,
								 * NULL for SQL NULL or no row */
	const char *first;			/* its first column when it has two or more */
	const char *sqlstate;		/* NULL: success */
	const char *message;
	const char *detail;
} DbResult;

extern void gw_db_start(void);
extern void gw_db_submit(DbReq *req);
extern void gw_db_listen(Topic *t);
extern void gw_db_unlisten(const char *topic);
extern bool gw_db_connected(void);
extern int	gw_db_leeway(void);
extern int	gw_db_pending(void);
extern void gw_db_req_free(DbReq *req);
extern int	gw_db_callback(struct lws *wsi, enum lws_callback_reasons reason,
						   void *user, void *in, size_t len);

/* results of requests (phoenix.c) */
extern void gw_phx_request_done(DbReq *req, const DbResult *r);
extern void gw_phx_listen_done(Topic *t, bool ok);

#endif							/* PGAPP_GATEWAY_H */
