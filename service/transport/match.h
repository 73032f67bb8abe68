/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * D-Bus match rules, evaluated by the hub itself for connections on its private socket (there is
 * no broker there to filter signals).  Pure logic: no I/O, no connection state; unit tested in
 * tests/unit/test-match.c.
 *
 * Supported keys (the D-Bus specification's meaning): type, sender, interface, member, path,
 * path_namespace, destination, arg0..arg63, arg0..arg63path, arg0namespace.  Anything else, a
 * malformed value, a duplicate key or a rule over MATCH_RULE_MAX_LEN bytes is -EINVAL.
 * eavesdrop= is accepted and ignored (a monitor-only feature); as in dbus-daemon it may repeat
 * and the last one counts.
 *
 * Text as dbus-daemon reads it: key=value pairs split by ',', whitespace allowed around keys;
 * inside '...' every byte is literal, outside \' is an apostrophe (so 'it'\''s' is "it's").
 * argN takes decimal digits only (arg0..arg63); argN, argNpath and arg0namespace share the slot
 * of their N, path and path_namespace share one slot.
 *
 * Matching reads the body of M for argN keys: M must be sealed (sd_bus_message_seal(), or any
 * message sent or received); an unsealed body has no arguments to match.  The read position is
 * rewound to the start of the body afterwards, so M can still be sent or read.
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#define MATCH_RULE_MAX_LEN 1024U      /* dbus-daemon's bound on a rule's text */
#define MATCH_SET_MAX_RULES 512U      /* per connection: dbus-daemon's max_match_rules_per_connection */
#define MATCH_RULE_MAX_ARG 63U        /* argN: N in 0..63 (DBUS_MAXIMUM_MATCH_RULE_ARG_NUMBER) */

typedef struct MatchRule MatchRule;
typedef struct MatchSet MatchSet;
typedef struct MatchIndex MatchIndex;

/* Parses TEXT; on success *RET owns a new rule.  -EINVAL for a bad rule, -E2BIG when over the
 * length bound, -ENOMEM.  *RET is untouched on failure. */
int match_rule_parse(const char *text, MatchRule **ret);
MatchRule *match_rule_free(MatchRule *r);
/* The rule in a canonical form (keys in a fixed order), for equality as dbus-daemon compares. */
const char *match_rule_text(const MatchRule *r);
/* True when message M matches every key of R.  SENDER is the name M is sent as (on the private
 * socket the message's own sender field may be unset); NULL means "use the message's".  sender=
 * and destination= compare names as strings: there is no name ownership to resolve on a
 * peer-to-peer connection. */
bool match_rule_matches(const MatchRule *r, sd_bus_message *m, const char *sender);

/* A connection's rules.  Adding an equal rule twice keeps two (dbus-daemon counts them);
 * removing takes away one equal rule. */
int match_set_new(MatchSet **ret);
/* The same, its rules entered in X as they are added and taken out as they go, so that
 * match_index_foreach() finds S (as OWNER) without looking at the sets whose rules cannot match.
 * X must outlive S. */
int match_set_new_indexed(MatchIndex *x, void *owner, MatchSet **ret);
MatchSet *match_set_free(MatchSet *s);
/* -EINVAL/-E2BIG from parsing, -ENOBUFS when the set already has MATCH_SET_MAX_RULES. */
int match_set_add(MatchSet *s, const char *text);
/* -ENOENT when no equal rule is in the set (dbus-daemon: MatchRuleNotFound). */
int match_set_remove(MatchSet *s, const char *text);
size_t match_set_size(const MatchSet *s);
/* True when any rule of S matches M. */
bool match_set_matches(const MatchSet *s, sd_bus_message *m, const char *sender);

/* The rules of many sets, by where a message can match them: a rule naming an interface and a
 * member sits under those two, and under its arg0 too when that must equal a string (the event
 * name of Events1.Event, the key of Store1.KeyChanged); the others sit in one side list.  A
 * message visits its two keys and the side list, and each rule there is evaluated as
 * match_rule_matches() does, so the answer is that of match_set_matches() on every set. */
int match_index_new(MatchIndex **ret);
/* Free the sets entered in X before X. */
MatchIndex *match_index_free(MatchIndex *x);
/* How many rules X holds. */
size_t match_index_size(const MatchIndex *x);
typedef void (*match_index_fn)(void *owner, void *userdata);
/* Calls FN(owner, USERDATA) once for each set of X that matches M, in no particular order; FN
 * must not add or remove rules.  Returns how many sets matched. */
size_t match_index_foreach(MatchIndex *x, sd_bus_message *m, const char *sender, match_index_fn fn, void *userdata);

static inline void match_rule_freep(MatchRule **r) { if (*r) match_rule_free(*r); }
static inline void match_set_freep(MatchSet **s) { if (*s) match_set_free(*s); }
