/*-------------------------------------------------------------------------
 *
 * static.c
 *	  Serving a directory of static files (--static DIR): the pages that
 *	  use the socket can come from the gateway itself.
 *
 * libwebsockets serves the files: DIR is mounted at "/" (LWSMPRO_FILE, with
 * index.html for a directory and the MIME types below), and "/health" gets a
 * mount of its own so that a file cannot shadow it.  Before lws looks at
 * the mounts, every HTTP request passes the filter here
 * (LWS_CALLBACK_FILTER_HTTP_CONNECTION), which answers by itself:
 *
 * - 405 to any method but GET and HEAD (with or without --static);
 * - 404 to a path with a segment that starts with "." (lws has already
 *   removed "/../" and "/./" and decoded %xx, so this refuses what is left:
 *   "..." tricks and hidden files such as .git or .env), to a path too long
 *   for lws's buffer, and to anything that does not resolve (realpath, so
 *   through symbolic links) to a regular file inside DIR.  A symbolic link
 *   inside DIR that leads out of it is therefore not followed.
 *
 * Files with an extension that neither the list below nor lws knows are
 * refused by lws with 415: only what a web page is made of is served.
 * Responses carry "X-Content-Type-Options: nosniff", so a browser never
 * guesses another type than the one sent.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway.h"

/* lws builds "<origin>/<uri>" in a 256-byte buffer: stay well inside it */
#define STATIC_PATH_MAX 240

static char root[PATH_MAX];
static size_t root_len;

/* the types lws lacks or sends without a charset (checked before lws's) */
static const struct lws_protocol_vhost_options mime[] = {
	{&mime[1], NULL, ".html", "text/html; charset=utf-8"},
	{&mime[2], NULL, ".htm", "text/html; charset=utf-8"},
	{&mime[3], NULL, ".js", "text/javascript; charset=utf-8"},
	{&mime[4], NULL, ".mjs", "text/javascript; charset=utf-8"},
	{&mime[5], NULL, ".css", "text/css; charset=utf-8"},
	{&mime[6], NULL, ".json", "application/json"},
	{&mime[7], NULL, ".map", "application/json"},
	{&mime[8], NULL, ".txt", "text/plain; charset=utf-8"},
	{&mime[9], NULL, ".webp", "image/webp"},
	{&mime[10], NULL, ".wasm", "application/wasm"},
	{NULL, NULL, ".webmanifest", "application/manifest+json"},
};

static struct lws_http_mount file_mount = {
	.mountpoint = "/",
	.mountpoint_len = 1,
	.def = "index.html",
	.protocol = "phoenix",		/* for LWS_CALLBACK_ADD_HEADERS */
	.extra_mimetypes = mime,
	.origin_protocol = LWSMPRO_FILE,
};

static struct lws_http_mount health_mount = {
	.mount_next = &file_mount,
	.mountpoint = "/health",
	.mountpoint_len = 7,
	.origin = "phoenix",
	.origin_protocol = LWSMPRO_CALLBACK,
};

/*
 * The mounts for --static, or NULL without it.  Exits when DIR is not a
 * readable directory.
 */
const struct lws_http_mount *
gw_static_mounts(void)
{
	struct stat st;

	if (gw_config.static_dir == NULL)
		return NULL;
	if (realpath(gw_config.static_dir, root) == NULL || stat(root, &st) != 0)
	{
		fprintf(stderr, "pgapp-gateway: --static: cannot use \"%s\": %s\n",
				gw_config.static_dir, strerror(errno));
		exit(2);
	}
	if (!S_ISDIR(st.st_mode))
	{
		fprintf(stderr, "pgapp-gateway: --static: \"%s\" is not a directory\n",
				gw_config.static_dir);
		exit(2);
	}
	root_len = strlen(root);
	if (root_len + 32 > STATIC_PATH_MAX)
	{
		fprintf(stderr, "pgapp-gateway: --static: the path \"%s\" is too long\n", root);
		exit(2);
	}
	file_mount.origin = root;
	return &health_mount;
}

/*
 * Answer status and close (the filter's refusals).
 */
static int
answer(struct lws *wsi, unsigned int status)
{
	unsigned char buf[LWS_PRE + 512];
	unsigned char *start = buf + LWS_PRE;
	unsigned char *p = start;
	unsigned char *end = buf + sizeof(buf) - 1;
	const char *body = status == HTTP_STATUS_METHOD_NOT_ALLOWED ?
	"method not allowed\n" : "not found\n";
	int			blen = (int) strlen(body);

	if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8",
									(lws_filepos_t) blen, &p, end) ||
		(status == HTTP_STATUS_METHOD_NOT_ALLOWED &&
		 lws_add_http_header_by_name(wsi, (const unsigned char *) "allow:",
									 (const unsigned char *) "GET, HEAD", 9, &p, end)) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0)
		lws_write(wsi, (unsigned char *) body, (size_t) blen, LWS_WRITE_HTTP_FINAL);
	return 1;
}

/*
 * Is the path (from the request, already decoded and with "/../" removed by
 * lws) a regular file inside the root, through any symbolic link?
 */
static bool
inside_root(const char *uri)
{
	char		path[STATIC_PATH_MAX + 32];
	char		real[PATH_MAX];
	struct stat st;
	const char *seg;
	size_t		ulen = strlen(uri);

	if (uri[0] != '/' || root_len + ulen + 16 > STATIC_PATH_MAX)
		return false;
	for (seg = uri; seg; seg = strchr(seg + 1, '/'))
		if (seg[1] == '.')
			return false;
	/* root + uri (+ index.html): the lengths were checked above */
	memcpy(path, root, root_len);
	memcpy(path + root_len, uri, ulen + 1);
	if (uri[ulen - 1] == '/')
		strcat(path, "index.html");
	else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		strcat(path, "/index.html");
	if (realpath(path, real) == NULL || stat(real, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	return strncmp(real, root, root_len) == 0 && real[root_len] == '/';
}

/*
 * LWS_CALLBACK_FILTER_HTTP_CONNECTION: 0 lets the request go on to the
 * mounts (or LWS_CALLBACK_HTTP); otherwise it has been answered and the
 * connection closes.
 */
int
gw_static_filter(struct lws *wsi, const char *uri)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 &&
		lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0)
		return answer(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED);
	if (gw_config.static_dir == NULL || uri == NULL || strcmp(uri, "/health") == 0)
		return 0;
	if (!inside_root(uri))
		return answer(wsi, HTTP_STATUS_NOT_FOUND);
	return 0;
}

/*
 * LWS_CALLBACK_HTTP_FILE_COMPLETION: a file has been sent; the connection
 * may carry the next request (keep-alive) unless lws says to hang up.
 */
int
gw_static_file_done(struct lws *wsi)
{
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/*
 * LWS_CALLBACK_ADD_HEADERS of a served file.
 */
int
gw_static_headers(struct lws *wsi, void *in)
{
	struct lws_process_html_args *args = in;
	unsigned char *p = (unsigned char *) args->p;
	unsigned char *end = p + args->max_len;

	if (lws_add_http_header_by_name(wsi, (const unsigned char *) "x-content-type-options:",
									(const unsigned char *) "nosniff", 7, &p, end))
		return 1;
	args->p = (char *) p;
	return 0;
}
