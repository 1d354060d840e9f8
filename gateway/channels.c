/*-------------------------------------------------------------------------
 *
 * channels.c
 *	  The channel definitions (pgapp.channels) and matching a topic to one.
 *
 * db.c loads the definitions when the listener connects and again whenever
 * pgapp.define_channel or pgapp.drop_channel notifies "pgapp_channels".
 * A pattern ending in '*' matches every topic that starts with what comes
 * before the '*'; any other pattern matches only itself.  An exact pattern
 * wins over prefixes, and a longer prefix over a shorter one.  Requests copy
 * the function name they need, so a reload never leaves one dangling.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

static ChannelDef *defs;
static int	ndefs;

static void
free_defs(ChannelDef *d, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		free(d[i].pattern);
		free(d[i].join_fn);
		free(d[i].handle_in_fn);
	}
	free(d);
}

/*
 * Replace the definitions by rows: [{"pattern", "join", "handle_in",
 * "presence"}].  On failure the old ones stay.
 */
void
gw_channels_load(json_t *rows)
{
	size_t		n = json_array_size(rows);
	ChannelDef *d = calloc(n ? n : 1, sizeof(ChannelDef));
	size_t		i;

	if (d == NULL)
	{
		gw_log(GW_ERR, "out of memory loading channels");
		return;
	}
	for (i = 0; i < n; i++)
	{
		json_t	   *r = json_array_get(rows, i);
		const char *pattern = json_string_value(json_object_get(r, "pattern"));
		const char *join = json_string_value(json_object_get(r, "join"));
		const char *hin = json_string_value(json_object_get(r, "handle_in"));
		size_t		plen;

		if (pattern == NULL || join == NULL)
			continue;
		plen = strlen(pattern);
		d[i].pattern = strdup(pattern);
		d[i].prefix = plen > 0 && pattern[plen - 1] == '*';
		d[i].prefix_len = d[i].prefix ? plen - 1 : plen;
		d[i].join_fn = strdup(join);
		d[i].handle_in_fn = hin ? strdup(hin) : NULL;
		d[i].presence = json_is_true(json_object_get(r, "presence"));
		if (d[i].pattern == NULL || d[i].join_fn == NULL || (hin && d[i].handle_in_fn == NULL))
		{
			free_defs(d, (int) n);
			gw_log(GW_ERR, "out of memory loading channels");
			return;
		}
	}
	free_defs(defs, ndefs);
	defs = d;
	ndefs = (int) n;
	gw_log(GW_INFO, "%d channel%s loaded", ndefs, ndefs == 1 ? "" : "s");
}

int
gw_channel_count(void)
{
	return ndefs;
}

const ChannelDef *
gw_channel_match(const char *topic)
{
	const ChannelDef *best = NULL;
	int			i;

	for (i = 0; i < ndefs; i++)
	{
		const ChannelDef *d = &defs[i];

		if (d->pattern == NULL)
			continue;
		if (!d->prefix)
		{
			if (strcmp(d->pattern, topic) == 0)
				return d;
		}
		else if (strncmp(d->pattern, topic, d->prefix_len) == 0 &&
				 (best == NULL || d->prefix_len > best->prefix_len))
			best = d;
	}
	return best;
}
