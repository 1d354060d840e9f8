/*-------------------------------------------------------------------------
 *
 * ws.c
 *	  HTTP and WebSocket: /health, the upgrade's checks, receiving client
 *	  messages and the bounded send queue of each socket.
 *
 * One libwebsockets protocol, "phoenix", serves both HTTP and WebSocket
 * (the Phoenix client sends no Sec-WebSocket-Protocol, so lws binds the
 * upgrade to the first protocol; a client that names "phoenix" gets it too).
 *
 * The upgrade (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE) is refused with an HTTP
 * status before any WebSocket exists when the path is not
 * <path>/websocket (404), the Origin is not allowed (403), the client asks
 * for a serializer other than vsn 2.x (400), no token is given (403), the
 * token is one the database would surely refuse (403: not three base64url
 * segments, or a payload without a numeric exp or with an exp past the
 * database's leeway -- gw_token_precheck, which reads the payload without
 * verifying it, so it can only refuse) or the gateway already has
 * max_connections clients (503).  The token itself is verified by the
 * database (pgapp.decode_token), which cannot answer within the callback
 * without blocking the loop (lws 4.1 has no way to hold an upgrade's answer
 * back): the socket is accepted, its messages are held until the answer (at
 * most HELD_MAX messages and max_message bytes in all, else 1008), and a
 * refused token closes it with code 1008 "invalid token" before any message
 * is handled.
 *
 * Receiving: a message may arrive in fragments; they are gathered up to
 * max_message bytes, and a longer message or frame closes the socket with
 * 1009 at its first fragment, before it is buffered.
 *
 * Sending: every frame is an OutMsg, encoded once as the bytes of the
 * WebSocket frame (a broadcast is shared by all its sockets) and queued;
 * frames queued on a socket together are written with one send.  The queue
 * of a socket is bounded by max_queue bytes.  A client that does not read
 * fast enough to stay under the bound is a slow consumer: its queue is
 * dropped and the connection killed at once, so memory stays bounded
 * whatever the clients do.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"

#define HELD_MAX 32				/* messages held while the token is checked */
#define WRITE_BATCH 4096		/* bytes of queued frames written at once */
#define TOKEN_MAX 4096

typedef struct SessionData
{
	Sock	   *sock;
} SessionData;

int			gw_socket_count;
uint64_t	gw_frames_in;
uint64_t	gw_frames_out;
uint64_t	gw_slow_closed;

static Sock *all_socks;
static uint64_t next_sock_id = 1;

static int	callback(struct lws *wsi, enum lws_callback_reasons reason,
					 void *user, void *in, size_t len);

/*
 * rx_buffer_size 512: libwebsockets allocates it for every connection, and
 * it was most of an idle socket's memory (4 KB of 6.8); a client's larger
 * messages arrive in more pieces, which are put together anyway
 * (bench/gateway: 3.2 KB a socket instead of 6.9).  tx_packet_size 4096
 * keeps the writes of queued frames at 4 KB.
 */
const struct lws_protocols gw_protocols[] = {
	{"phoenix", callback, sizeof(SessionData), 512, 0, NULL, 4096},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/*
 * A new message of len bytes of text, with one reference: the whole
 * WebSocket frame (FIN, text, the length; a server's frames are not masked
 * and no extension is enabled), so that it is the same bytes for every
 * socket it is sent to and queued frames can go out in one write.
 */
OutMsg *
gw_msg_new(const char *text, size_t len)
{
	size_t		hlen = len < 126 ? 2 : len < 65536 ? 4 : 10;
	OutMsg	   *m = malloc(sizeof(OutMsg) + hlen + len);
	int			i;

	if (m == NULL)
		return NULL;
	m->refs = 1;
	m->len = hlen + len;
	m->data[0] = 0x81;
	if (hlen == 2)
		m->data[1] = (unsigned char) len;
	else if (hlen == 4)
	{
		m->data[1] = 126;
		m->data[2] = (unsigned char) (len >> 8);
		m->data[3] = (unsigned char) len;
	}
	else
	{
		m->data[1] = 127;
		for (i = 0; i < 8; i++)
			m->data[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
	}
	memcpy(m->data + hlen, text, len);
	return m;
}

void
gw_msg_unref(OutMsg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

static void
drop_queue(Sock *s)
{
	OutNode    *n = s->out_head;

	while (n)
	{
		OutNode    *next = n->next;

		gw_msg_unref(n->msg);
		free(n);
		n = next;
	}
	s->out_head = s->out_tail = NULL;
	s->out_bytes = 0;
	s->out_count = 0;
}

/*
 * Queue m on s (taking a new reference).  A queue past max_queue makes s a
 * slow consumer: it is killed now, without a close frame.
 */
void
gw_sock_send(Sock *s, OutMsg *m)
{
	OutNode    *n;

	if (s->wsi == NULL || s->closing || m == NULL)
		return;
	if (s->out_bytes + m->len > (size_t) gw_config.max_queue)
	{
		gw_log(GW_WARN, "socket %llu: send queue over %d bytes, closing a slow consumer",
			   (unsigned long long) s->id, gw_config.max_queue);
		gw_slow_closed++;
		drop_queue(s);
		s->closing = true;
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	n = malloc(sizeof(OutNode));
	if (n == NULL)
	{
		gw_sock_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	m->refs++;
	n->msg = m;
	n->next = NULL;
	if (s->out_tail)
		s->out_tail->next = n;
	else
		s->out_head = n;
	s->out_tail = n;
	s->out_bytes += m->len;
	s->out_count++;
	lws_callback_on_writable(s->wsi);
}

/*
 * Encode frame (stealing the reference) and queue it on s.
 */
void
gw_sock_send_json(Sock *s, json_t *frame)
{
	char	   *text = json_dumps(frame, JSON_COMPACT);
	OutMsg	   *m;

	json_decref(frame);
	if (text == NULL)
	{
		gw_log(GW_ERR, "cannot encode a frame");
		return;
	}
	m = gw_msg_new(text, strlen(text));
	free(text);
	gw_sock_send(s, m);
	gw_msg_unref(m);
}

/*
 * Close s with a close frame after what is queued has been sent.
 */
void
gw_sock_close(Sock *s, int code, const char *reason)
{
	if (s->wsi == NULL || s->closing)
		return;
	s->closing = true;
	s->close_code = code;
	s->close_reason = reason;
	lws_callback_on_writable(s->wsi);
}

void
gw_sock_unref(Sock *s)
{
	if (--s->refs > 0)
		return;
	free(s->token);
	free(s->claims);
	free(s->role);
	free(s->sub);
	free(s->rx);
	json_decref(s->held);
	free(s);
}

/*
 * [join_ref, ref, topic, event, payload] (stealing payload's reference).
 */
json_t *
gw_frame(const char *join_ref, const char *ref, const char *topic,
		 const char *event, json_t *payload)
{
	json_t	   *a = json_array();

	json_array_append_new(a, join_ref ? json_string(join_ref) : json_null());
	json_array_append_new(a, ref ? json_string(ref) : json_null());
	json_array_append_new(a, json_string(topic));
	json_array_append_new(a, json_string(event));
	json_array_append_new(a, payload ? payload : json_object());
	return a;
}

/*
 * A phx_reply {"status": status, "response": response} (stealing response).
 */
void
gw_reply(Sock *s, const char *join_ref, const char *ref, const char *topic,
		 const char *status, json_t *response)
{
	json_t	   *p = json_object();

	json_object_set_new(p, "status", json_string(status));
	json_object_set_new(p, "response", response ? response : json_object());
	gw_sock_send_json(s, gw_frame(join_ref, ref, topic, "phx_reply", p));
}

/*
 * Close the sockets that sent nothing for idle_timeout seconds (the Phoenix
 * client sends a heartbeat every 30 s).
 */
void
gw_idle_check(void)
{
	time_t		now = time(NULL);
	Sock	   *s;

	for (s = all_socks; s; s = s->next_all)
	{
		if (!s->closing && now - s->last_rx > gw_config.idle_timeout)
			gw_sock_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout");
		else
			gw_phx_sock_tick(s, now);
	}
}

/*
 * Decode base64url text of len bytes into out (room for len * 3 / 4 + 3
 * bytes); the decoded length, or -1 for a character outside the alphabet.
 * Padding ('=') at the end is accepted.
 */
static long
base64url_decode(const char *in, size_t len, unsigned char *out)
{
	unsigned int acc = 0;
	int			bits = 0;
	long		n = 0;
	size_t		i;

	while (len > 0 && in[len - 1] == '=')
		len--;
	for (i = 0; i < len; i++)
	{
		char		ch = in[i];
		int			v;

		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '-')
			v = 62;
		else if (ch == '_')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (unsigned int) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (unsigned char) ((acc >> bits) & 0xFF);
		}
	}
	return n;
}

/*
 * Why the database would surely refuse token, judged without verifying it
 * ("invalid token", "token expired"), or NULL: let the database decide.
 * Refusing on an unverified token is sound because this only ever refuses:
 * a token that is not three base64url segments, or whose payload (when it
 * parses) has no numeric exp or an exp past the database's leeway, fails
 * pgapp.decode_token whatever its signature.  A payload jansson cannot
 * parse (a number beyond its range, say) is left to the database.
 */
const char *
gw_token_precheck(const char *token)
{
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	unsigned char payload[TOKEN_MAX];
	long		n;
	json_t	   *claims;
	json_t	   *exp;
	int			leeway = gw_db_leeway();
	const char *why = NULL;

	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL ||
		(size_t) (dot2 - dot1 - 1) > sizeof(payload) * 4 / 3 - 4)
		return "invalid token";
	n = base64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), payload);
	if (n < 0)
		return "invalid token";
	claims = json_loadb((const char *) payload, (size_t) n, 0, NULL);
	if (claims == NULL)
		return NULL;
	exp = json_object_get(claims, "exp");
	if (!json_is_object(claims) || !json_is_number(exp))
		why = "invalid token";
	else if (leeway >= 0 && (double) time(NULL) >= json_number_value(exp) + leeway)
		why = "token expired";
	json_decref(claims);
	return why;
}

/*
 * Is the request's Origin allowed?  No Origin (not a browser): yes.  With
 * --origins: one of the listed values, or any for "*".  Without: the Origin's
 * host must be the Host the request was sent to (same origin).
 */
static bool
origin_allowed(struct lws *wsi)
{
	char		origin[512];
	char		host[512];
	const char *o;
	int			n;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
		return true;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) >= (int) sizeof(origin) ||
		lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
		return false;
	if (gw_config.origins)
	{
		size_t		olen = strlen(origin);

		for (o = gw_config.origins; *o;)
		{
			const char *end = strchr(o, ',');
			size_t		l = end ? (size_t) (end - o) : strlen(o);

			while (l > 0 && *o == ' ')
				o++, l--;
			while (l > 0 && o[l - 1] == ' ')
				l--;
			if ((l == 1 && *o == '*') || (l == olen && strncmp(o, origin, l) == 0))
				return true;
			if (!end)
				break;
			o = end + 1;
		}
		return false;
	}
	n = lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	if (n <= 0)
		return false;
	o = strstr(origin, "://");
	return o != NULL && strcmp(o + 3, host) == 0;
}

/*
 * Refuse with an HTTP status (and a short JSON body); lws closes afterwards.
 */
static int
refuse(struct lws *wsi, unsigned int status, const char *why)
{
	gw_log(GW_INFO, "upgrade refused (%u): %s", status, why);
	lws_return_http_status(wsi, status, why);
	return 1;
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the checks that need no database.
 */
static int
confirm_upgrade(struct lws *wsi)
{
	char		uri[1024];
	char		expect[1024];
	char		arg[TOKEN_MAX + 8];
	const char *v;
	const char *why;
	int			n;

	n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	snprintf(expect, sizeof(expect), "%s/websocket", gw_config.socket_path);
	if (n <= 0 || strcmp(uri, expect) != 0)
		return refuse(wsi, HTTP_STATUS_NOT_FOUND, "no socket at this path");
	if (!origin_allowed(wsi))
		return refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
	v = lws_get_urlarg_by_name(wsi, "vsn=", arg, sizeof(arg));
	if (v == NULL || strncmp(v, "2.", 2) != 0)
		return refuse(wsi, HTTP_STATUS_BAD_REQUEST, "only the V2 JSON serializer (vsn=2.0.0) is supported");
	v = lws_get_urlarg_by_name(wsi, "token=", arg, sizeof(arg));
	if (v == NULL || v[0] == '\0')
		return refuse(wsi, HTTP_STATUS_FORBIDDEN, "no token");
	if ((why = gw_token_precheck(v)) != NULL)
		return refuse(wsi, HTTP_STATUS_FORBIDDEN, why);
	if (gw_socket_count >= gw_config.max_connections)
		return refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many connections");
	return 0;
}

/*
 * GET /health: the database connection and the counts, as JSON; 503 while
 * the database is not connected.
 */
static int
health(struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 2048];
	unsigned char *start = buf + LWS_PRE;
	unsigned char *p = start;
	unsigned char *end = buf + sizeof(buf) - 1;
	char		body[1024];
	int			blen;
	bool		up = gw_db_connected();

	blen = snprintf(body, sizeof(body),
					"{\"status\":\"%s\",\"database\":{\"connected\":%s,\"pending\":%d},"
					"\"sockets\":%d,\"topics\":%d,\"channels\":%d,"
					"\"frames_in\":%llu,\"frames_out\":%llu,\"slow_consumers_closed\":%llu,"
					"\"version\":\"" GW_VERSION "\"}",
					up ? "ok" : "degraded", up ? "true" : "false", gw_db_pending(),
					gw_socket_count, gw_topic_count(), gw_channel_count(),
					(unsigned long long) gw_frames_in, (unsigned long long) gw_frames_out,
					(unsigned long long) gw_slow_closed);
	if (lws_add_http_common_headers(wsi, up ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
									"application/json", (lws_filepos_t) blen, &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
									 (const unsigned char *) "no-store", 8, &p, end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (lws_write(wsi, (unsigned char *) body, (size_t) blen, LWS_WRITE_HTTP_FINAL) != blen)
		return -1;
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int
established(struct lws *wsi, SessionData *sd)
{
	Sock	   *s = calloc(1, sizeof(Sock));
	char	   *buf = malloc(TOKEN_MAX + 8);
	DbReq	   *req = calloc(1, sizeof(DbReq));
	const char *token = NULL;

	if (buf)
		token = lws_get_urlarg_by_name(wsi, "token=", buf, TOKEN_MAX + 8);
	if (s == NULL || token == NULL || req == NULL)
	{
		free(s);
		free(buf);
		free(req);
		return -1;
	}
	s->wsi = wsi;
	s->refs = 1;
	s->id = next_sock_id++;
	s->auth = SOCK_AUTH_PENDING;
	s->last_rx = time(NULL);
	s->next_all = all_socks;
	if (all_socks)
		all_socks->prev_all = s;
	all_socks = s;
	sd->sock = s;
	gw_socket_count++;

	req->kind = DBREQ_AUTH;
	req->sock = s;
	s->refs++;
	req->payload = json_string(token);
	free(buf);
	if (req->payload == NULL)
	{
		/* not UTF-8: refused like any bad token */
		gw_db_req_free(req);
		gw_phx_auth_done(s, NULL, "invalid token");
		return 0;
	}
	gw_log(GW_DEBUG, "socket %llu connected", (unsigned long long) s->id);
	gw_db_submit(req);
	return 0;
}

static int
receive(struct lws *wsi, Sock *s, const char *in, size_t len)
{
	size_t		remaining = lws_remaining_packet_payload(wsi);

	if (s->closing)
		return 0;
	if (s->rx_len + len + remaining > (size_t) gw_config.max_message)
	{
		gw_log(GW_INFO, "socket %llu: message over %d bytes, closing",
			   (unsigned long long) s->id, gw_config.max_message);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
						 (unsigned char *) "message too big", 15);
		return -1;
	}
	if (lws_frame_is_binary(wsi))
	{
		lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
						 (unsigned char *) "binary frames are not supported", 31);
		return -1;
	}
	if (s->rx_len + len + remaining + 1 > s->rx_cap)
	{
		/* what this message needs, as far as its frame says */
		size_t		cap = s->rx_len + len + remaining + 1;
		char	   *rx = realloc(s->rx, cap < 1024 ? 1024 : cap);

		if (rx == NULL)
			return -1;
		s->rx = rx;
		s->rx_cap = cap < 1024 ? 1024 : cap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	if (!lws_is_final_fragment(wsi) || remaining > 0)
		return 0;

	s->rx[s->rx_len] = '\0';
	s->last_rx = time(NULL);
	gw_frames_in++;
	if (s->auth == SOCK_AUTH_PENDING)
	{
		if (s->held == NULL)
			s->held = json_array();
		if (json_array_size(s->held) >= HELD_MAX ||
			s->held_bytes + s->rx_len > (size_t) gw_config.max_message)
		{
			lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
							 (unsigned char *) "too many messages before authentication", 39);
			return -1;
		}
		if (s->held == NULL ||
			json_array_append_new(s->held, json_stringn(s->rx, s->rx_len)) != 0)
		{
			/* not UTF-8 (jansson refuses the string), or out of memory */
			lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
							 (unsigned char *) "malformed message", 17);
			return -1;
		}
		s->held_bytes += s->rx_len;
	}
	else if (s->auth == SOCK_AUTH_OK)
		gw_phx_message(s, s->rx, s->rx_len);
	s->rx_len = 0;
	/* a large buffer is not kept between messages */
	if (s->rx_cap > 4096)
	{
		free(s->rx);
		s->rx = NULL;
		s->rx_cap = 0;
	}
	return 0;
}

/* Drop the first frame of s's queue (sent). */
static void
pop_sent(Sock *s)
{
	OutNode    *n = s->out_head;

	s->out_head = n->next;
	if (s->out_head == NULL)
		s->out_tail = NULL;
	s->out_bytes -= n->msg->len;
	s->out_count--;
	gw_frames_out++;
	gw_msg_unref(n->msg);
	free(n);
}

static int
writeable(struct lws *wsi, Sock *s)
{
	unsigned char batch[WRITE_BATCH];
	int			writes = 0;

	/*
	 * Write what is queued while the kernel takes it (a burst goes out in one
	 * callback, not one poll round per frame), then wait for the next
	 * writable.  Frames are complete on the wire already (gw_msg_new), so the
	 * ones queued together are copied into one buffer and written with one
	 * send: a socket that fell behind by several broadcasts gets them in one
	 * segment, not one system call and one packet each.
	 */
	while (s->out_head && writes < 64)
	{
		OutMsg	   *m = s->out_head->msg;
		size_t		n = 0;

		if (writes > 0 && lws_send_pipe_choked(wsi))
			break;
		if (s->out_head->next == NULL || m->len + s->out_head->next->msg->len > WRITE_BATCH)
		{
			/* one frame, from its own buffer */
			if (lws_write(wsi, m->data, m->len, LWS_WRITE_RAW) < (int) m->len)
				return -1;
			pop_sent(s);
		}
		else
		{
			while (s->out_head && n + s->out_head->msg->len <= WRITE_BATCH)
			{
				memcpy(batch + n, s->out_head->msg->data, s->out_head->msg->len);
				n += s->out_head->msg->len;
				pop_sent(s);
			}
			if (lws_write(wsi, batch, n, LWS_WRITE_RAW) < (int) n)
				return -1;
		}
		writes++;
	}
	if (s->out_head)
	{
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (s->closing)
	{
		if (s->close_reason)
			lws_close_reason(wsi, (enum lws_close_status) s->close_code,
							 (unsigned char *) s->close_reason, strlen(s->close_reason));
		return -1;
	}
	return 0;
}

static void
closed(Sock *s)
{
	gw_log(GW_DEBUG, "socket %llu closed", (unsigned long long) s->id);
	gw_phx_sock_closed(s);
	drop_queue(s);
	s->wsi = NULL;
	s->closing = true;
	if (s->prev_all)
		s->prev_all->next_all = s->next_all;
	else
		all_socks = s->next_all;
	if (s->next_all)
		s->next_all->prev_all = s->prev_all;
	gw_socket_count--;
	gw_sock_unref(s);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason,
		 void *user, void *in, size_t len)
{
	SessionData *sd = (SessionData *) user;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			if (strcmp((const char *) in, "/health") == 0)
				return health(wsi);
			lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
			return -1;
		case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
			return gw_static_filter(wsi, (const char *) in);
		case LWS_CALLBACK_ADD_HEADERS:
			return gw_static_headers(wsi, in);
		case LWS_CALLBACK_HTTP_FILE_COMPLETION:
			return gw_static_file_done(wsi);
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			return confirm_upgrade(wsi);
		case LWS_CALLBACK_ESTABLISHED:
			return established(wsi, sd);
		case LWS_CALLBACK_RECEIVE:
			if (sd == NULL || sd->sock == NULL)
				return -1;
			return receive(wsi, sd->sock, (const char *) in, len);
		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (sd == NULL || sd->sock == NULL)
				return 0;
			return writeable(wsi, sd->sock);
		case LWS_CALLBACK_CLOSED:
			if (sd && sd->sock)
			{
				closed(sd->sock);
				sd->sock = NULL;
			}
			return 0;
		default:
			return gw_db_callback(wsi, reason, user, in, len);
	}
}
