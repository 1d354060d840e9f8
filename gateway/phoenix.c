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
 *   channel's join function runs (db.c), once the topic's LISTEN is in
 *   place; {"ok": v} becomes the ok reply with response v, followed by the
 *   topic's broadcasts that came while the function ran (so none committed
 *   after the function's snapshot is lost; one committed just before may
 *   come both in v and as an event); {"error": v} the error reply v; an SQL
 *   error {"reason":"join crashed"}.
 * - phx_leave -> ok reply; the socket stops receiving the topic.  A leave or
 *   push naming another join_ref than the topic's current join is dropped
 *   (a null join_ref, as V1 clients send, matches).
 * - any other event on a joined topic runs the channel's handle_in; its
 *   {"ok": v} / {"error": v} is the reply, NULL means no reply.  An event on
 *   a topic the socket has not joined -> error {"reason":"unmatched topic"}.
 * - a broadcast (a NOTIFY of pgapp.broadcast's envelope on the topic's
 *   channel) -> [null, null, topic, event, payload] to every socket joined
 *   to the topic, encoded once.  A stored (large) message is fetched with
 *   pgapp.message(id) first.  Events phx_* are never relayed (only a raw
 *   NOTIFY can carry one: pgapp.broadcast refuses them).  An envelope whose
 *   "sender" names one of this gateway's sockets (pgapp.broadcast_from, or
 *   pgapp.typing, in that socket's request) is not sent to that socket.
 *
 * Presence (channels defined with presence => true), as Phoenix.Presence:
 * the join's transaction also runs pgapp.presence_track(topic, <the
 * claims' sub>, <the join's "presence" object, or {}>, presence_ttl) when
 * the join lets the socket in; after the ok reply the socket gets
 * presence_state (pgapp.presence_list, read once the topic is LISTENed);
 * pgapp's worker broadcasts the presence_diff events.  The gateway keeps the
 * ref and meta of each tracked join and renews them every presence_ttl / 2
 * (one request per socket for all its metas due), and untracks a meta when
 * its join goes: leave, rejoin, close, or a join that ended for a socket or
 * join_ref no longer there.  Untracks run in the socket's order (after a
 * renewal queued before, which would otherwise bring the meta back) and
 * even once it has closed.  If the gateway dies, the metas expire after
 * their ttl.  A token without sub joins without being tracked.
 *
 * Errors PT429 (the socket's rate limit, db.c, or a pgapp.rate_limit the
 * function raised) become the error reply {"reason": "rate limited",
 * "retry_after": seconds}.  A socket whose token's exp (plus the database's
 * leeway) has passed is closed with 1008 "token expired", checked every
 * second and before each message.
 *
 * Bounds per socket: max_channels joined; INFLIGHT_MAX handle_in requests
 * and INFLIGHT_MAX join requests waiting or running (rejoining one topic in
 * a loop adds no channel but would queue requests); beyond, the error
 * reply {"reason": "too many requests"}.
 *
 * Topics live in a hash table (fixed 4096 buckets, chained) while any
 * socket has joined or is joining them; the last leave UNLISTENs.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"

#define TOPIC_BUCKETS 4096
#define TOPIC_MAX 255			/* pgapp.broadcast's limit */
#define INFLIGHT_MAX 16			/* handle_in requests per socket, and join
								 * requests */

static Topic *buckets[TOPIC_BUCKETS];
static int	ntopics;

static void remove_join(Join *j);
static char *dup_or_null(const char *s);

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

/*
 * A new request of s for topic (holding a reference to s); NULL when out
 * of memory.
 */
static DbReq *
new_req(DbReqKind kind, Sock *s, const char *topic)
{
	DbReq	   *req = calloc(1, sizeof(DbReq));

	if (req == NULL)
		return NULL;
	req->kind = kind;
	req->sock = s;
	s->refs++;
	req->topic = dup_or_null(topic);
	if (topic && req->topic == NULL)
	{
		gw_db_req_free(req);
		return NULL;
	}
	return req;
}

/*
 * Untrack the presence ref of s on topic.  It runs after the socket's
 * earlier requests (a renewal queued before cannot bring it back) and even
 * once the socket has closed; if it cannot run, the meta expires after its
 * ttl.
 */
static void
untrack(Sock *s, const char *topic, const char *ref)
{
	DbReq	   *req;

	if (s->sub == NULL || ref == NULL)
		return;
	req = new_req(DBREQ_PRESENCE_UNTRACK, s, topic);
	if (req == NULL || (req->payload = json_string(ref)) == NULL)
	{
		if (req)
			gw_db_req_free(req);
		gw_log(GW_WARN, "out of memory: presence %s on %s is left to expire", ref, topic);
		return;
	}
	req->always = true;
	gw_db_submit(req);
}

/* Forget the messages kept for j. */
static void
drop_kept(Join *j)
{
	for (int i = 0; i < j->nkept; i++)
		gw_msg_unref(j->kept[i]);
	free(j->kept);
	j->kept = NULL;
	j->nkept = 0;
	j->kept_bytes = 0;
}

/*
 * Keep m for j, whose join function is running: it goes out after the join's
 * reply.  What a socket is sent and kept is bounded together by --max-queue,
 * past which it is cut off as a slow consumer.
 */
static void
keep(Join *j, OutMsg *m)
{
	Sock	   *s = j->sock;
	OutMsg	  **more;

	if (s->wsi == NULL || s->closing)
		return;
	if (s->out_bytes + j->kept_bytes + m->len > (size_t) gw_config.max_queue ||
		(more = realloc(j->kept, sizeof(OutMsg *) * (j->nkept + 1))) == NULL)
	{
		gw_log(GW_WARN, "socket %llu: over %d bytes of %s waiting for its join, closing a slow consumer",
			   (unsigned long long) s->id, gw_config.max_queue, j->topic->name);
		gw_slow_closed++;
		drop_kept(j);
		gw_sock_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "slow consumer");
		return;
	}
	j->kept = more;
	m->refs++;
	j->kept[j->nkept++] = m;
	j->kept_bytes += m->len;
}

static void
remove_join(Join *j)
{
	Sock	   *s = j->sock;
	Topic	   *t = j->topic;
	Join	  **p = &s->joins;

	if (j->presence_ref)
		untrack(s, t->name, j->presence_ref);

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
	free(j->presence_ref);
	free(j->presence_meta);
	json_decref(j->reply);
	if (j->held)
	{
		s->joining--;
		gw_db_req_free(j->held);
	}
	drop_kept(j);
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
/*
 * Send j's socket presence_state (read from the database first).
 */
static void
send_presence_state(Join *j)
{
	DbReq	   *req = new_req(DBREQ_PRESENCE_STATE, j->sock, j->topic->name);

	gw_log(GW_DEBUG, "socket %llu: reading the presence of %s", (unsigned long long) j->sock->id,
		   j->topic->name);

	if (req == NULL || (j->join_ref && (req->join_ref = strdup(j->join_ref)) == NULL))
	{
		if (req)
			gw_db_req_free(req);
		gw_sock_close(j->sock, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	gw_db_submit(req);
}

static void
finish_join(Join *j)
{
	json_t	   *reply = j->reply;

	j->reply = NULL;
	j->joined = true;
	gw_reply(j->sock, j->join_ref, j->ref, j->topic->name, "ok", reply);
	/* then what the topic sent while the join function ran, in order */
	for (int i = 0; i < j->nkept; i++)
		gw_sock_send(j->sock, j->kept[i]);
	drop_kept(j);

	/*
	 * As Phoenix.Presence: presence_state after the join's reply.  Read now,
	 * once the topic is LISTENed, so that every presence_diff after the state
	 * read reaches the socket (the client applies the diffs it gets before
	 * the state after it, and applying one twice changes nothing).
	 */
	if (j->presence)
		send_presence_state(j);
}

void
gw_phx_listen_done(Topic *t, bool ok)
{
	Join	   *j = t->joins;

	/* removing the last join frees t: count what is left first */
	while (j)
	{
		Join	   *next = j->next_in_topic;

		if (j->joined && j->presence && ok)
		{
			/*
			 * LISTEN again after the listener's connection was lost: the
			 * presence_diffs of meanwhile are lost, so a new state (the
			 * client's Presence syncs to it).
			 */
			send_presence_state(j);
		}
		else if (!j->joined && j->held)
		{
			if (ok)
			{
				/* the topic is LISTENed: now the join function may run */
				DbReq	   *req = j->held;

				j->held = NULL;
				gw_db_submit(req);
			}
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
	Topic	   *pinned = NULL;
	Join	   *j;
	DbReq	   *req;

	if (s->joining >= INFLIGHT_MAX)
	{
		/*
		 * Rejoining one topic never adds a channel, but queues a request:
		 * bound those too (before anything changes).
		 */
		gw_reply(s, join_ref, ref, topic, "error", reason("too many requests"));
		return;
	}
	if (old)
	{
		/*
		 * As Phoenix: a duplicate join closes the existing channel.  Its
		 * topic stays (pinned by one more join while the old one goes), so
		 * that a flood of rejoins neither drops nor LISTENs it again.
		 */
		pinned = old->topic;
		gw_sock_send_json(s, gw_frame(old->join_ref, NULL, topic, "phx_close", NULL));
		pinned->njoins++;
		remove_join(old);
		pinned->njoins--;
	}
	def = strlen(topic) <= TOPIC_MAX ? gw_channel_match(topic) : NULL;
	if (def == NULL || s->njoins >= gw_config.max_channels)
	{
		if (pinned && pinned->njoins == 0)
			topic_drop(pinned);
		gw_reply(s, join_ref, ref, topic, "error",
				 reason(def == NULL ? "unmatched topic" : "too many channels"));
		return;
	}
	t = topic_get(topic);
	req = new_req(DBREQ_JOIN, s, topic);
	if (req)
	{
		req->join_ref = dup_or_null(join_ref);
		req->ref = dup_or_null(ref);
		req->fn = strdup(def->join_fn);
		req->payload = json_is_object(payload) ? json_incref(payload) : json_object();
		/* a token without sub sees presence, and is not tracked */
		req->track = def->presence && s->sub != NULL;
	}
	if (t == NULL || req == NULL || req->fn == NULL || req->payload == NULL ||
		(join_ref && req->join_ref == NULL) || (ref && req->ref == NULL) ||
		(j = add_join(s, t, join_ref, ref)) == NULL)
	{
		if (req)
			gw_db_req_free(req);
		if (t && t->njoins == 0)
			topic_drop(t);
		gw_reply(s, join_ref, ref, topic, "error", reason("out of memory"));
		return;
	}
	j->presence = def->presence;
	s->joining++;

	/*
	 * The join function runs only once the topic is LISTENed: a broadcast
	 * committed after the function's snapshot then reaches the socket (kept
	 * until the reply is sent), so nothing falls between the join's data and
	 * the events after it.  One committed before may come both ways: a page
	 * tells them apart by their ids.
	 */
	if (t->listening)
		gw_db_submit(req);
	else
	{
		j->held = req;
		gw_db_listen(t);
	}
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
	if (join_ref && j->join_ref && strcmp(join_ref, j->join_ref) != 0)
	{
		/*
		 * As Phoenix: a message of an earlier join of the topic (the client
		 * raced a rejoin) is dropped, without a reply; it cannot leave or
		 * push on the channel that replaced it.
		 */
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
	req = new_req(DBREQ_HANDLE_IN, s, topic);
	if (req)
	{
		req->event = strdup(event);
		req->join_ref = dup_or_null(join_ref);
		req->ref = dup_or_null(ref);
		req->fn = strdup(def->handle_in_fn);
		req->payload = json_incref(payload);
	}
	if (req == NULL || req->event == NULL || req->fn == NULL ||
		(join_ref && req->join_ref == NULL) || (ref && req->ref == NULL))
	{
		if (req)
			gw_db_req_free(req);
		gw_reply(s, join_ref, ref, topic, "error", reason("out of memory"));
		return;
	}
	s->inflight++;
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
 * Has the token of s expired (past its exp and the database's leeway, when
 * the database would refuse it)?  Then s is closed with 1008 "token
 * expired".
 */
static bool
token_expired(Sock *s, time_t now)
{
	int			leeway = gw_db_leeway();

	if (s->exp <= 0 || s->closing || s->auth != SOCK_AUTH_OK)
		return false;
	if ((double) now < s->exp + (leeway < 0 ? 30 : leeway))
		return false;
	gw_log(GW_INFO, "socket %llu: its token has expired, closing", (unsigned long long) s->id);
	gw_sock_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token expired");
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

	if (token_expired(s, time(NULL)))
	{
		/* nothing more runs on an expired token, not even before the tick */
		json_decref(a);
		return;
	}
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
	if (json_is_string(json_object_get(c, "sub")) && json_string_length(json_object_get(c, "sub")) > 0)
		s->sub = strdup(json_string_value(json_object_get(c, "sub")));
	if (json_is_number(json_object_get(c, "exp")))
		s->exp = json_number_value(json_object_get(c, "exp"));
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
 * (a new reference).  A join's {"ok": v} may also have "presence", an
 * object (the meta it tracks on a presence channel).  NULL for anything
 * else.
 */
static const char *
outcome(json_t *r, json_t **response, bool is_join)
{
	json_t	   *v;
	json_t	   *meta = json_object_get(r, "presence");
	size_t		size = json_object_size(r);

	if (!json_is_object(r))
		return NULL;
	if (is_join && meta != NULL && json_is_object(meta) && json_object_get(r, "ok") != NULL)
		size--;
	if (size != 1)
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

/*
 * The error reply of a PT429 (pgapp.rate_limit: the gateway's own rate
 * limit, or one the function raised): {"reason": "rate limited",
 * "retry_after": seconds}, from the error's DETAIL; NULL for another error.
 */
static json_t *
rate_limited(const DbResult *r)
{
	json_t	   *d;
	json_t	   *reply;
	json_int_t	retry = 1;

	if (r->sqlstate == NULL || strcmp(r->sqlstate, "PT429") != 0)
		return NULL;
	d = r->detail ? json_loads(r->detail, 0, NULL) : NULL;
	if (json_is_integer(json_object_get(d, "retry_after")))
		retry = json_integer_value(json_object_get(d, "retry_after"));
	json_decref(d);
	reply = json_pack("{s:s, s:I}", "reason", "rate limited", "retry_after",
					  retry > 0 ? retry : (json_int_t) 1);
	return reply;
}

/*
 * What a presence join tracked, from its first column "<ref> <meta>": the
 * ref (a uuid, into ref[37]) and the meta's text (in *meta), or false when
 * it tracked nothing.
 */
static bool
tracked(const DbReq *req, const DbResult *r, char *ref, const char **meta)
{
	const char *f = req->track ? r->first : NULL;

	if (f == NULL || strlen(f) < 38 || f[36] != ' ' || strspn(f, "0123456789abcdef-") != 36)
		return false;
	memcpy(ref, f, 36);
	ref[36] = '\0';
	*meta = f + 37;
	return true;
}

static void
join_done(DbReq *req, const DbResult *r)
{
	Sock	   *s = req->sock;
	Join	   *j = find_join_ref(s, req->topic, req->join_ref);
	json_t	   *v = r->value ? json_loads(r->value, 0, NULL) : NULL;
	json_t	   *response = NULL;
	const char *status = v ? outcome(v, &response, true) : NULL;
	char		refbuf[37];
	const char *meta = NULL;
	const char *ref = tracked(req, r, refbuf, &meta) ? refbuf : NULL;
	json_t	   *limited = rate_limited(r);

	if (j == NULL || j->joined)
	{
		/* left or joined again meanwhile: what it tracked goes */
		untrack(s, req->topic, ref);
		json_decref(response);
		json_decref(limited);
		json_decref(v);
		return;
	}
	if (limited)
	{
		json_decref(v);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", limited);
		remove_join(j);
		return;
	}
	if (status == NULL)
	{
		if (r->sqlstate)
			gw_log(GW_INFO, "join of %s failed: %s (SQLSTATE %s)", req->topic, r->message, r->sqlstate);
		else
			gw_log(GW_WARN, "join of %s: the join function returned neither {\"ok\": ...} nor {\"error\": ...}",
				   req->topic);
		untrack(s, req->topic, ref);
		json_decref(v);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", reason("join crashed"));
		remove_join(j);
	}
	else if (strcmp(status, "error") == 0)
	{
		untrack(s, req->topic, ref);
		json_decref(v);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", response);
		remove_join(j);
	}
	else
	{
		if (ref)
		{
			j->presence_ref = strdup(ref);
			j->presence_meta = strdup(meta);
			j->renew_at = time(NULL) + (gw_config.presence_ttl / 2 > 0 ? gw_config.presence_ttl / 2 : 1);
			if (j->presence_ref == NULL || j->presence_meta == NULL)
			{
				/* cannot renew it: let it go now rather than lose it later */
				untrack(s, req->topic, ref);
				free(j->presence_ref);
				j->presence_ref = NULL;
			}
		}
		json_decref(v);
		j->reply = response;
		finish_join(j);
	}
}

static void
handle_in_done(DbReq *req, const DbResult *r)
{
	Sock	   *s = req->sock;
	Join	   *j = find_join_ref(s, req->topic, req->join_ref);
	json_t	   *v;
	json_t	   *response = NULL;
	json_t	   *limited;
	const char *status;

	if (j == NULL || !j->joined)
		return;
	if ((limited = rate_limited(r)) != NULL)
	{
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", limited);
		return;
	}
	if (r->sqlstate)
	{
		gw_log(GW_INFO, "handle_in %s on %s failed: %s (SQLSTATE %s)",
			   req->event, req->topic, r->message, r->sqlstate);
		gw_reply(s, req->join_ref, req->ref, req->topic, "error", reason("handle_in crashed"));
		return;
	}
	if (r->value == NULL)
		return;					/* no reply */
	v = json_loads(r->value, 0, NULL);
	status = v ? outcome(v, &response, false) : NULL;
	json_decref(v);
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
 * presence_list(topic) answered: presence_state to the socket, if it is
 * still joined with that join_ref.  Without it the client's Presence would
 * wait for a state forever: on an error the channel gets phx_error (the
 * client rejoins), as when a Phoenix channel crashes.
 */
static void
presence_state_done(DbReq *req, const DbResult *r)
{
	Sock	   *s = req->sock;
	Join	   *j = find_join_ref(s, req->topic, req->join_ref);
	json_t	   *state = r->value ? json_loads(r->value, 0, NULL) : NULL;

	if (j == NULL || !j->joined)
	{
		json_decref(state);
		return;
	}
	if (!json_is_object(state))
	{
		gw_log(GW_WARN, "presence_list(%s) failed: %s", req->topic,
			   r->message ? r->message : "not an object");
		json_decref(state);
		gw_sock_send_json(s, gw_frame(req->join_ref, req->join_ref, req->topic, "phx_error", NULL));
		remove_join(j);
		return;
	}
	gw_sock_send_json(s, gw_frame(req->join_ref, NULL, req->topic, "presence_state", state));
}

/*
 * A renewal failed: try the metas it renewed again in a second (before
 * their ttl ends, if the database comes back).
 */
static void
renew_done(DbReq *req, const DbResult *r)
{
	Sock	   *s = req->sock;
	size_t		i;

	if (r->sqlstate == NULL)
		return;
	gw_log(GW_INFO, "socket %llu: renewing its presence failed: %s (SQLSTATE %s)",
		   (unsigned long long) s->id, r->message, r->sqlstate);
	for (i = 0; i < json_array_size(req->payload); i++)
	{
		json_t	   *e = json_array_get(req->payload, i);
		Join	   *j = find_join(s, json_string_value(json_array_get(e, 0)));

		if (j && j->presence_ref &&
			strcmp(j->presence_ref, json_string_value(json_array_get(e, 2))) == 0)
			j->renew_at = time(NULL) + 1;
	}
}

/*
 * A request finished (r: its result or error).
 */
void
gw_phx_request_done(DbReq *req, const DbResult *r)
{
	Sock	   *s = req->sock;

	switch (req->kind)
	{
		case DBREQ_MESSAGE:
			if (r->value)
				gw_phx_deliver(r->value, req->exclude);
			else
				gw_log(GW_WARN, "cannot read stored message %s: %s",
					   json_string_value(req->payload), r->message ? r->message : "not found");
			return;
		case DBREQ_PRESENCE_UNTRACK:
			if (r->sqlstate)
				gw_log(GW_WARN, "untracking presence %s on %s failed (it expires after its ttl): %s",
					   json_string_value(req->payload), req->topic, r->message);
			return;
		case DBREQ_HANDLE_IN:
			s->inflight--;
			if (s->wsi)
				handle_in_done(req, r);
			return;
		case DBREQ_JOIN:
			s->joining--;
			if (s->wsi)
				join_done(req, r);
			else
			{
				char		ref[37];
				const char *meta;

				if (tracked(req, r, ref, &meta))
					untrack(s, req->topic, ref);	/* closed meanwhile */
			}
			return;
		case DBREQ_AUTH:
			if (s->wsi == NULL)
				return;
			if (r->sqlstate)
				gw_log(GW_INFO, "token refused: %s (SQLSTATE %s)", r->message, r->sqlstate);
			gw_phx_auth_done(s, r->sqlstate ? NULL : r->value,
							 r->sqlstate || r->value == NULL ? "invalid token" : NULL);
			return;
		case DBREQ_PRESENCE_STATE:
			if (s->wsi)
				presence_state_done(req, r);
			return;
		case DBREQ_PRESENCE_RENEW:
			if (s->wsi)
				renew_done(req, r);
			return;
	}
}

/*
 * Once a second for every socket: close it when its token has expired, and
 * renew its presence metas due (one request for all of them).
 */
void
gw_phx_sock_tick(Sock *s, time_t now)
{
	json_t	   *due = NULL;
	Join	   *j;
	DbReq	   *req;

	if (s->wsi == NULL || s->closing || token_expired(s, now))
		return;
	for (j = s->joins; j; j = j->next_in_sock)
	{
		if (j->presence_ref == NULL || j->renew_at > now)
			continue;
		if (due == NULL && (due = json_array()) == NULL)
			return;
		json_array_append_new(due, json_pack("[s,s,s]", j->topic->name, j->presence_meta,
											 j->presence_ref));
		j->renew_at = now + (gw_config.presence_ttl / 2 > 0 ? gw_config.presence_ttl / 2 : 1);
	}
	if (due == NULL)
		return;
	if (json_array_size(due) == 0)
	{
		json_decref(due);
		return;
	}
	req = new_req(DBREQ_PRESENCE_RENEW, s, NULL);
	if (req == NULL)
	{
		json_decref(due);
		return;					/* they are tried again at their next time */
	}
	gw_log(GW_DEBUG, "socket %llu: renewing %zu presence meta%s", (unsigned long long) s->id,
		   json_array_size(due), json_array_size(due) == 1 ? "" : "s");
	req->payload = due;
	gw_db_submit(req);
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
	{
		if (j->sock->id == exclude)
			continue;
		if (j->joined)
			gw_sock_send(j->sock, m);
		else if (j->held == NULL)
			keep(j, m);			/* its join function is running */
	}
	gw_msg_unref(m);
}
