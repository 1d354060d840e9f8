/*-------------------------------------------------------------------------
 *
 * phoenix.c
 *	  The Phoenix Channels protocol (V2 JSON serializer) on top of ws.c and
 *	  db.c: heartbeats, joins, leaves, pushes, replies and broadcasts.
 *
 * A frame is a JSON array [join_ref, ref, topic, event, payload].  What the
 * gateway does, as Phoenix.Socket and Phoenix.Channel do:
 * - ["phoenix" heartbeat] -> phx_reply {"status":"ok","response":{}}.
 * - phx_join on a topic no channel pattern matches -> phx_reply error
 *   {"reason":"unmatched topic"}; a join of a topic already joined closes
 *   the old one (phx_close with the old join_ref) first.  Otherwise the
 *   channel's join function runs (db.c); {"ok": v} becomes the ok reply with
 *   response v, sent only once the topic's LISTEN is in place (so a
 *   broadcast committed after the client saw its reply reaches it);
 *   {"error": v} the error reply v; an SQL error {"reason":"join crashed"}.
 * - phx_leave -> ok reply; the socket stops receiving the topic.
 * - any other event on a joined topic runs the channel's handle_in; its
 *   {"ok": v} / {"error": v} is the reply, NULL means no reply.  An event on
 *   a topic the socket has not joined -> error {"reason":"unmatched topic"}.
 * - a broadcast (a NOTIFY of pgapp.broadcast's envelope on the topic's
 *   channel) -> [null, null, topic, event, payload] to every socket joined
 *   to the topic, encoded once.  A stored (large) message is fetched with
 *   pgapp.message(id) first.  Events phx_* are never relayed (only a raw
 *   NOTIFY can carry one: pgapp.broadcast refuses them).
 *
 * Topics live in a hash table (fixed 4096 buckets, chained) while any
 * socket has joined or is joining them; the last leave UNLISTENs.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define TOPIC_BUCKETS 4096
#define TOPIC_MAX 255			/* pgapp.broadcast's limit */
#define INFLIGHT_MAX 16			/* handle_in requests per socket */

static Topic *buckets[TOPIC_BUCKETS];
static int	ntopics;

static void remove_join(Join *j);

static unsigned int
hash(const char *s)
{
	unsigned int h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 16777619u;
	return h % TOPIC_BUCKETS;
}

Topic *
gw_topic_find(const char *name)
{
	Topic	   *t;

	for (t = buckets[hash(name)]; t; t = t->next_hash)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

int
gw_topic_count(void)
{
	return ntopics;
}

void
gw_topics_foreach(void (*fn) (Topic *t))
{
	int			i;

	for (i = 0; i < TOPIC_BUCKETS; i++)
	{
		Topic	   *t = buckets[i];

		while (t)
		{
			Topic	   *next = t->next_hash;

			fn(t);
			t = next;
		}
	}
}

static void
reset_one(Topic *t)
{
	t->listening = false;
	t->listen_sent = false;
}

/* The listener's session is gone, and every LISTEN with it. */
void
gw_topics_reset_listening(void)
{
	gw_topics_foreach(reset_one);
}

static Topic *
topic_get(const char *name)
{
	Topic	   *t = gw_topic_find(name);
	unsigned int h;

	if (t)
		return t;
	t = calloc(1, sizeof(Topic));
	if (t == NULL || (t->name = strdup(name)) == NULL)
	{
		free(t);
		return NULL;
	}
	h = hash(name);
	t->next_hash = buckets[h];
	buckets[h] = t;
	ntopics++;
	return t;
}

static void
topic_drop(Topic *t)
{
	Topic	  **p = &buckets[hash(t->name)];

	while (*p && *p != t)
		p = &(*p)->next_hash;
	if (*p)
		*p = t->next_hash;
	if (t->listen_sent)
		gw_db_unlisten(t->name);
	ntopics--;
	free(t->name);
	free(t);
}

static Join *
find_join(Sock *s, const char *topic)
{
	Join	   *j;

	for (j = s->joins; j; j = j->next_in_sock)
		if (strcmp(j->topic->name, topic) == 0)
			return j;
	return NULL;
}

static bool
same_ref(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void
remove_join(Join *j)
{
	Sock	   *s = j->sock;
	Topic	   *t = j->topic;
	Join	  **p = &s->joins;

	while (*p && *p != j)
		p = &(*p)->next_in_sock;
	if (*p)
		*p = j->next_in_sock;
	s->njoins--;
	if (j->prev_in_topic)
		j->prev_in_topic->next_in_topic = j->next_in_topic;
	else
		t->joins = j->next_in_topic;
	if (j->next_in_topic)
		j->next_in_topic->prev_in_topic = j->prev_in_topic;
	t->njoins--;
	free(j->join_ref);
	free(j->ref);
	json_decref(j->reply);
	free(j);
	if (t->njoins == 0)
		topic_drop(t);
}

static Join *
add_join(Sock *s, Topic *t, const char *join_ref, const char *ref)
{
	Join	   *j = calloc(1, sizeof(Join));

	if (j == NULL)
		return NULL;
	j->sock = s;
	j->topic = t;
	j->join_ref = dup_or_null(join_ref);
	j->ref = dup_or_null(ref);
	j->next_in_sock = s->joins;
	s->joins = j;
	s->njoins++;
	j->next_in_topic = t->joins;
	if (t->joins)
		t->joins->prev_in_topic = j;
	t->joins = j;
	t->njoins++;
	return j;
}

static json_t *
reason(const char *why)
{
	return json_pack("{s:s}", "reason", why);
}

/*
 * The join succeeded and the topic is LISTENed: send the ok reply.
 */
static void
finish_join(Join *j)
{
	json_t	   *reply = j->reply;

	j->reply = NULL;
	j->joined = true;
	gw_reply(j->sock, j->join_ref, j->ref, j->topic->name, "ok", reply);
}

void
gw_phx_listen_done(Topic *t, bool ok)
{
	Join	   *j = t->joins;

	/* removing the last join frees t: count what is left first */
	while (j)
	{
		Join	   *next = j->next_in_topic;

		if (!j->joined && j->reply)
		{
			if (ok)
				finish_join(j);
			else
			{
				gw_reply(j->sock, j->join_ref, j->ref, t->name, "error",
						 reason("cannot subscribe to the topic"));
				if (t->njoins == 1)
				{
					remove_join(j);
					return;
				}
				remove_join(j);
			}
		}
		j = next;
	}
}

static void
handle_join(Sock *s, const char *join_ref, const char *ref, const char *topic,
			json_t *payload)
{
	Join	   *old = find_join(s, topic);
	const ChannelDef *def;
	Topic	   *t;
	Join	   *j;
	DbReq	   *req;

	if (old)
	{
		/* as Phoenix: a duplicate join closes the existing channel */
		gw_sock_send_json(s, gw_frame(old->join_ref, NULL, topic, "phx_close", NULL));
		remove_join(old);
	}
	def = strlen(topic) <= TOPIC_MAX ? gw_channel_match(topic) : NULL;
	if (def == NULL)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("unmatched topic"));
		return;
	}
	if (s->njoins >= gw_config.max_channels)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("too many channels"));
		return;
	}
	t = topic_get(topic);
	req = calloc(1, sizeof(DbReq));
	if (t == NULL || req == NULL ||
		(j = add_join(s, t, join_ref, ref)) == NULL)
	{
		free(req);
		if (t && t->njoins == 0)
			topic_drop(t);
		gw_reply(s, join_ref, ref, topic, "error", reason("out of memory"));
		return;
	}
	req->kind = DBREQ_JOIN;
	req->sock = s;
	s->refs++;
	req->topic = strdup(topic);
	req->join_ref = dup_or_null(join_ref);
	req->ref = dup_or_null(ref);
	req->fn = strdup(def->join_fn);
	req->payload = json_is_object(payload) ? json_incref(payload) : json_object();
	gw_db_submit(req);
}

static void
handle_push(Sock *s, const char *join_ref, const char *ref, const char *topic,
			const char *event, json_t *payload)
{
	Join	   *j = find_join(s, topic);
	const ChannelDef *def;
	DbReq	   *req;

	if (j == NULL || !j->joined)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("unmatched topic"));
		return;
	}
	if (strcmp(event, "phx_leave") == 0)
	{
		gw_reply(s, join_ref, ref, topic, "ok", NULL);
		remove_join(j);
		return;
	}
	def = gw_channel_match(topic);
	if (def == NULL || def->handle_in_fn == NULL)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("no handle_in"));
		return;
	}
	if (s->inflight >= INFLIGHT_MAX)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("too many requests"));
		return;
	}
	req = calloc(1, sizeof(DbReq));
	if (req == NULL)
	{
		gw_reply(s, join_ref, ref, topic, "error", reason("out of memory"));
		return;
	}
	req->kind = DBREQ_HANDLE_IN;
	req->sock = s;
	s->refs++;
	s->inflight++;
	req->topic = strdup(topic);
	req->event = strdup(event);
	req->join_ref = dup_or_null(join_ref);
	req->ref = dup_or_null(ref);
	req->fn = strdup(def->handle_in_fn);
	req->payload = json_incref(payload);
	gw_db_submit(req);
}

/*
 * A join_ref or ref: a string or null (anything else is malformed).
 */
static bool
ref_value(json_t *v, const char **out)
{
	if (json_is_null(v))
		*out = NULL;
	else if (json_is_string(v))
		*out = json_string_value(v);
	else
		return false;
	return true;
}

/*
 * One message from an authenticated socket.
 */
void
gw_phx_message(Sock *s, const char *text, size_t len)
{
	json_error_t err;
	json_t	   *a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	const char *join_ref,
			   *ref,
			   *topic,
			   *event;
	json_t	   *payload;

	if (!json_is_array(a) || json_array_size(a) != 5 ||
		!ref_value(json_array_get(a, 0), &join_ref) ||
		!ref_value(json_array_get(a, 1), &ref) ||
		!json_is_string(json_array_get(a, 2)) ||
		!json_is_string(json_array_get(a, 3)))
	{
		gw_log(GW_INFO, "socket %llu: malformed message, closing", (unsigned long long) s->id);
		json_decref(a);
		gw_sock_close(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "malformed message");
		return;
	}
	topic = json_string_value(json_array_get(a, 2));
	event = json_string_value(json_array_get(a, 3));
	payload = json_array_get(a, 4);

	if (strcmp(topic, "phoenix") == 0 && strcmp(event, "heartbeat") == 0)
		gw_reply(s, NULL, ref, topic, "ok", NULL);
	else if (strcmp(event, "phx_join") == 0)
		handle_join(s, join_ref, ref, topic, payload);
	else
		handle_push(s, join_ref, ref, topic, event, payload);
	json_decref(a);
}

/*
 * The token check finished: claims (JSON text) or an error.
 */
void
gw_phx_auth_done(Sock *s, const char *claims, const char *error)
{
	json_t	   *c = claims ? json_loads(claims, 0, NULL) : NULL;
	const char *role = NULL;
	size_t		i;

	if (c && json_is_string(json_object_get(c, "role")))
		role = json_string_value(json_object_get(c, "role"));
	else if (c)
		role = gw_config.anon_role;
	if (error == NULL && (c == NULL || role == NULL || role[0] == '\0'))
		error = c ? "token has no role claim" : "invalid claims";
	if (error)
	{
		gw_log(GW_INFO, "socket %llu refused: %s", (unsigned long long) s->id, error);
		json_decref(c);
		s->auth = SOCK_AUTH_REFUSED;
		json_decref(s->held);
		s->held = NULL;
		gw_sock_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "invalid token");
		return;
	}
	s->claims = strdup(claims);
	s->role = strdup(role);
	json_decref(c);
	if (s->claims == NULL || s->role == NULL)
	{
		gw_sock_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	s->auth = SOCK_AUTH_OK;
	gw_log(GW_DEBUG, "socket %llu authenticated as %s", (unsigned long long) s->id, s->role);
	if (s->held)
	{
		json_t	   *held = s->held;

		s->held = NULL;
		for (i = 0; i < json_array_size(held) && s->wsi && !s->closing; i++)
		{
			json_t	   *m = json_array_get(held, i);

			gw_phx_message(s, json_string_value(m), json_string_length(m));
		}
		json_decref(held);
	}
}

void
gw_phx_sock_closed(Sock *s)
{
	while (s->joins)
		remove_join(s->joins);
	json_decref(s->held);
	s->held = NULL;
}

/*
 * A function's {"ok": v} or {"error": v}: the status, and v in *response
 * (a new reference).  NULL for anything else.
 */
static const char *
outcome(json_t *r, json_t **response)
{
	json_t	   *v;

	if (!json_is_object(r) || json_object_size(r) != 1)
		return NULL;
	if ((v = json_object_get(r, "ok")) != NULL)
	{
		*response = json_incref(v);
		return "ok";
	}
	if ((v = json_object_get(r, "error")) != NULL)
	{
		*response = json_incref(v);
		return "error";
	}
	return NULL;
}

static Join *
find_join_ref(Sock *s, const char *topic, const char *join_ref)
{
	Join	   *j = find_join(s, topic);

	return j && same_ref(j->join_ref, join_ref) ? j : NULL;
}

static void
join_done(DbReq *req, const char *result, const char *sqlstate, const char *message)
{
	Sock	   *s = req->sock;
	Join	   *j = find_join_ref(s, req->topic, req->join_ref);
	json_t	   *r = result ? json_loads(result, 0, NULL) : NULL;
	json_t	   *response = NULL;
	const char *status = r ? outcome(r, &response) : NULL;

	json_decref(r);
	if (j == NULL || j->joined)
	{
		/* left or joined again meanwhile */
		json_decref(response);
		return;
	}
	if (status == NULL)
	{
		if (sqlstate)
			gw_log(GW_INFO, "join of %s failed: %s (SQLSTATE %s)", req->topic, message, sqlstate);
		else
			gw_log(GW_WARN, "join of %s: the join function returned neither {\"ok\": ...} nor {\"error\": ...}",
				   req->topic);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", reason("join crashed"));
		remove_join(j);
	}
	else if (strcmp(status, "error") == 0)
	{
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", response);
		remove_join(j);
	}
	else
	{
		j->reply = response;
		if (j->topic->listening)
			finish_join(j);
		else
			gw_db_listen(j->topic);
	}
}

static void
handle_in_done(DbReq *req, const char *result, const char *sqlstate, const char *message)
{
	Sock	   *s = req->sock;
	Join	   *j = find_join_ref(s, req->topic, req->join_ref);
	json_t	   *r;
	json_t	   *response = NULL;
	const char *status;

	s->inflight--;
	if (j == NULL || !j->joined)
		return;
	if (sqlstate)
	{
		gw_log(GW_INFO, "handle_in %s on %s failed: %s (SQLSTATE %s)",
			   req->event, req->topic, message, sqlstate);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", reason("handle_in crashed"));
		return;
	}
	if (result == NULL)
		return;					/* no reply */
	r = json_loads(result, 0, NULL);
	status = r ? outcome(r, &response) : NULL;
	json_decref(r);
	if (status == NULL)
	{
		gw_log(GW_WARN, "handle_in %s on %s returned neither {\"ok\": ...} nor {\"error\": ...}",
			   req->event, req->topic);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", reason("handle_in crashed"));
		return;
	}
	gw_reply(s, req->join_ref, req->ref, req->topic, status, response);
}

/*
 * A request finished: result is the function's value as text (NULL for
 * SQL NULL), or sqlstate and message tell the error.
 */
void
gw_phx_request_done(DbReq *req, const char *result, const char *sqlstate,
					const char *message)
{
	Sock	   *s = req->sock;

	if (req->kind == DBREQ_MESSAGE)
	{
		if (result)
			gw_phx_deliver(result, req->exclude);
		else
			gw_log(GW_WARN, "cannot read stored message %s: %s",
				   json_string_value(req->payload), message ? message : "not found");
		return;
	}
	if (s == NULL)
		return;
	if (req->kind == DBREQ_HANDLE_IN)
	{
		if (s->wsi)
			handle_in_done(req, result, sqlstate, message);
		else
			s->inflight--;
		return;
	}
	if (s->wsi == NULL)
		return;
	if (req->kind == DBREQ_AUTH)
	{
		if (sqlstate)
			gw_log(GW_INFO, "token refused: %s (SQLSTATE %s)", message, sqlstate);
		gw_phx_auth_done(s, sqlstate ? NULL : result, sqlstate ? "invalid token" :
						 result ? NULL : "invalid token");
	}
	else if (req->kind == DBREQ_JOIN)
		join_done(req, result, sqlstate, message);
}

/*
 * The socket of this gateway that an envelope's "sender" names
 * ("<gw_instance>:<id>", pgapp.broadcast_from), or 0: none, another
 * gateway's, or not of that shape (then the message goes to every socket).
 */
static uint64_t
own_sender(json_t *sender)
{
	const char *v = json_string_value(sender);
	uint64_t	id = 0;
	const char *p;

	if (v == NULL || strncmp(v, gw_instance, 16) != 0 || v[16] != ':' || v[17] == '\0')
		return 0;
	for (p = v + 17; *p; p++)
	{
		if (*p < '0' || *p > '9' || id > (UINT64_MAX - 9) / 10)
			return 0;
		id = id * 10 + (uint64_t) (*p - '0');
	}
	return id;
}

/*
 * A notification's payload: pgapp's envelope {"topic","event","payload",...}
 * or a reference {"ref": true, "id", ...} to a stored message.  The socket
 * exclude (when not 0), or the one the envelope's "sender" names, does not
 * get it (pgapp.broadcast_from).
 */
void
gw_phx_deliver(const char *envelope, uint64_t exclude)
{
	json_t	   *e = json_loads(envelope, 0, NULL);
	const char *topic;
	const char *event;
	Topic	   *t;
	Join	   *j;
	json_t	   *frame;
	char	   *dumped;
	OutMsg	   *m;

	if (!json_is_object(e) ||
		!json_is_string(json_object_get(e, "topic")) ||
		!json_is_string(json_object_get(e, "event")))
	{
		json_decref(e);
		return;					/* not pgapp's: a raw NOTIFY on the channel */
	}
	topic = json_string_value(json_object_get(e, "topic"));
	event = json_string_value(json_object_get(e, "event"));
	if (strncmp(event, "phx_", 4) == 0)
	{
		/*
		 * pgapp.broadcast refuses phx_* events, but anyone who can connect
		 * may NOTIFY raw text on a topic's channel: a forged phx_close or
		 * phx_reply would close or confuse the clients' channels.  Never
		 * relay one.
		 */
		gw_log(GW_WARN, "dropped a notification on %s with the reserved event %s", topic, event);
		json_decref(e);
		return;
	}
	t = gw_topic_find(topic);
	if (t == NULL)
	{
		json_decref(e);
		return;
	}
	if (exclude == 0)
		exclude = own_sender(json_object_get(e, "sender"));
	if (json_is_true(json_object_get(e, "ref")))
	{
		DbReq	   *req = calloc(1, sizeof(DbReq));

		if (req && json_is_string(json_object_get(e, "id")))
		{
			req->kind = DBREQ_MESSAGE;
			req->payload = json_incref(json_object_get(e, "id"));
			req->exclude = exclude;
			gw_db_submit(req);
		}
		else
			free(req);
		json_decref(e);
		return;
	}
	frame = gw_frame(NULL, NULL, topic, event, json_incref(json_object_get(e, "payload")));
	dumped = json_dumps(frame, JSON_COMPACT);
	json_decref(frame);
	json_decref(e);
	if (dumped == NULL)
		return;
	m = gw_msg_new(dumped, strlen(dumped));
	free(dumped);
	if (m == NULL)
		return;
	for (j = t->joins; j; j = j->next_in_topic)
		if (j->joined && j->sock->id != exclude)
			gw_sock_send(j->sock, m);
	gw_msg_unref(m);
}
