/* SPDX-License-Identifier: MIT */
/*
 * clusterhub-codegen: D-Bus introspection XML in, sd-bus C out.
 *
 * For every interface of every input file it writes
 *   PREFIX-NAME-common.h/.c  names, the interface XML as a string
 *   PREFIX-NAME-client.h/.c  sync and async method calls, signal matches, property getters
 *   PREFIX-NAME-server.h/.c  an SD_BUS_METHOD_WITH_ARGS vtable, a typed handler table,
 *                            typed reply helpers (usable later, for deferred replies) and
 *                            signal emitters
 * and, with --errors, PREFIX-errors.h/.c from an error list (org.clusterhub.Error.xml).
 *
 * Argument convention (one rule everywhere): the leading run of "simple" arguments (basic
 * types, and arrays of strings/object paths) is passed as typed C values; the rest (variants,
 * dictionaries, structs, other arrays) stays in the message for the caller to read, or is
 * written by an append callback.
 *
 * Array arguments (as, ao) are read in linear time.  A skeleton reads at most a bound of
 * elements per array (ch_NAME_set_max_strv(), process-wide per interface) and answers a call
 * with more with --limit-error, without reading the rest.
 *
 * GDBusNodeInfo does not validate names or signatures, so everything is validated here,
 * and an error names the file, interface, member and argument at fault.  Output is
 * deterministic: XML order, no timestamps, no paths.
 */

#include <errno.h>
#include <gio/gio.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 255
#define MAX_SIGNATURE 255
#define MAX_DEPTH 32

typedef struct Options {
        const char *ns;               /* C namespace, e.g. "ch" */
        const char *iface_prefix;     /* stripped from interface names, e.g. "org.clusterhub." */
        const char *unsupported_error;
        const char *limit_error;      /* answers an array argument over the skeleton's bound */
        const char *output_dir;
        const char *errors_file;
} Options;

typedef struct Iface {
        GDBusInterfaceInfo *info;
        const char *xml_file;
        char *xml_text;         /* the source file, embedded for introspection checks */
        char *base;             /* "store1" */
        char *lower;            /* "ch_store1" */
        char *upper;            /* "CH_STORE1" */
        char *camel;            /* "ChStore1" */
        char *file_base;        /* "ch-store1" */
} Iface;

/* ---------------------------------------------------------------------------------------
 * naming
 */

static const char *const c_reserved[] = {
        "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
        "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
        "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
        "typedef", "union", "unsigned", "void", "volatile", "while", "bool", "true", "false",
        /* parameter names the generated functions use themselves */
        "bus", "m", "userdata", "error", "ret_error", "path", "destination", "callback",
        "ret_slot", "append", "append_userdata", "timeout_usec", "ret_reply", "r", "handler",
        "sender", "reply", "call", "arg0", "arg0namespace", "found", "prefix", "handlers", "find",
        NULL,
};

static gboolean is_reserved(const char *s) {
        for (size_t i = 0; c_reserved[i]; i++)
                if (g_str_equal(c_reserved[i], s))
                        return TRUE;
        return FALSE;
}

/* "GetDel" -> "get_del", "MSetNX" -> "m_set_nx", "TTL" -> "ttl", "DBSize" -> "db_size" */
static char *snake(const char *s) {
        GString *o = g_string_new(NULL);
        size_t n = strlen(s);

        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (g_ascii_isupper(c) && i > 0) {
                        gboolean prev_lower = g_ascii_islower(s[i - 1]) || g_ascii_isdigit(s[i - 1]);
                        gboolean next_lower = i + 1 < n && g_ascii_islower(s[i + 1]);
                        if (prev_lower || (g_ascii_isupper(s[i - 1]) && next_lower))
                                g_string_append_c(o, '_');
                }
                g_string_append_c(o, g_ascii_tolower(c));
        }
        return g_string_free(o, FALSE);
}

/* A C parameter name for a D-Bus argument name. */
static char *param_name(const char *name) {
        if (is_reserved(name))
                return g_strconcat(name, "_", NULL);
        return g_strdup(name);
}

static gboolean is_c_identifier(const char *s) {
        if (!s || !*s || !(g_ascii_isalpha(*s) || *s == '_'))
                return FALSE;
        for (const char *p = s; *p; p++)
                if (!(g_ascii_isalnum(*p) || *p == '_'))
                        return FALSE;
        return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * types
 */

static gboolean is_basic(const char *sig) {
        return sig[0] && !sig[1] && strchr("ybnqiuxtdsogh", sig[0]);
}

static gboolean is_strv(const char *sig) {
        return g_str_equal(sig, "as") || g_str_equal(sig, "ao");
}

static gboolean is_simple(const char *sig) {
        return is_basic(sig) || is_strv(sig);
}

static const char *c_in_type(const char *sig) {
        if (is_strv(sig))
                return "char **";
        switch (sig[0]) {
        case 'y': return "uint8_t ";
        case 'b': return "int ";
        case 'n': return "int16_t ";
        case 'q': return "uint16_t ";
        case 'i': return "int32_t ";
        case 'u': return "uint32_t ";
        case 'x': return "int64_t ";
        case 't': return "uint64_t ";
        case 'd': return "double ";
        case 'h': return "int ";
        default:  return "const char *";
        }
}

/* Type of a value the client receives and owns (strings are copied). */
static const char *c_out_type(const char *sig) {
        if (is_strv(sig))
                return "char **";
        if (strchr("sog", sig[0]))
                return "char *";
        return c_in_type(sig);
}

static gboolean is_string_type(const char *sig) {
        return is_basic(sig) && strchr("sog", sig[0]);
}

/* Number of leading simple arguments. */
static guint n_simple(GDBusArgInfo **args) {
        guint n = 0;
        while (args && args[n] && is_simple(args[n]->signature))
                n++;
        return n;
}

static guint n_args(GDBusArgInfo **args) {
        guint n = 0;
        while (args && args[n])
                n++;
        return n;
}

/* Whether a server skeleton reads an array argument itself (and so bounds it). */
static gboolean reads_strv(GDBusInterfaceInfo *i) {
        for (guint k = 0; i->methods && i->methods[k]; k++) {
                GDBusArgInfo **args = i->methods[k]->in_args;
                for (guint a = 0; a < n_simple(args); a++)
                        if (is_strv(args[a]->signature))
                                return TRUE;
        }
        return FALSE;
}

static gboolean all_simple(GDBusArgInfo **args) {
        return n_simple(args) == n_args(args);
}

/* ---------------------------------------------------------------------------------------
 * validation
 */

/* Deepest nesting of arrays and structs/dict entries in one complete type, as the
 * specification counts it (each limited to 32). Returns the end of the type in *end. */
static void type_depth(const char *p, const char **end, int arrays, int structs, int *max_arrays, int *max_structs) {
        if (arrays > *max_arrays)
                *max_arrays = arrays;
        if (structs > *max_structs)
                *max_structs = structs;
        if (*p == 'a') {
                type_depth(p + 1, end, arrays + 1, structs, max_arrays, max_structs);
                return;
        }
        if (*p == '(' || *p == '{') {
                char close = *p == '(' ? ')' : '}';
                p++;
                while (*p && *p != close)
                        type_depth(p, &p, arrays, structs + 1, max_arrays, max_structs);
                *end = *p ? p + 1 : p;
                return;
        }
        *end = *p ? p + 1 : p;
}

static int signature_depth(const char *sig) {
        int max_arrays = 0, max_structs = 0;
        const char *end = sig;
        while (*end)
                type_depth(end, &end, 0, 0, &max_arrays, &max_structs);
        return MAX(max_arrays, max_structs);
}

static gboolean check_single_type(const char *sig) {
        const char *end = NULL;
        if (!sig || !*sig || strlen(sig) > MAX_SIGNATURE)
                return FALSE;
        if (!g_variant_is_signature(sig))
                return FALSE;
        if (!g_variant_type_string_scan(sig, NULL, &end) || *end != '\0')
                return FALSE;
        return signature_depth(sig) <= MAX_DEPTH;
}

static gboolean fail(GError **error, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static gboolean fail(GError **error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, msg);
        g_free(msg);
        return FALSE;
}

static gboolean check_args(const char *where, GDBusArgInfo **args, GError **error) {
        for (guint i = 0; args && args[i]; i++) {
                GDBusArgInfo *a = args[i];
                if (!a->name || !*a->name)
                        return fail(error, "%s: argument %u has no name", where, i);
                if (!is_c_identifier(a->name))
                        return fail(error, "%s: argument name '%s' is not a C identifier", where, a->name);
                if (!check_single_type(a->signature))
                        return fail(error, "%s argument '%s': invalid type '%s' (one complete D-Bus type, at most %d bytes, nesting at most %d)",
                                    where, a->name, a->signature ? a->signature : "", MAX_SIGNATURE, MAX_DEPTH);
                for (guint j = 0; j < i; j++)
                        if (g_str_equal(args[j]->name, a->name))
                                return fail(error, "%s: argument name '%s' is used twice", where, a->name);
        }
        return TRUE;
}

static gboolean check_member(const char *file, const char *iface, const char *kind, const char *name,
                             GHashTable *seen, GError **error) {
        if (!name || !g_dbus_is_member_name(name) || strlen(name) > MAX_NAME)
                return fail(error, "%s: interface '%s': %s name '%s' is not a valid D-Bus member name",
                            file, iface, kind, name ? name : "");
        char *key = g_strconcat(kind[0] == 'p' ? "p:" : "m:", name, NULL);
        if (g_hash_table_contains(seen, key)) {
                g_free(key);
                return fail(error, "%s: interface '%s': %s '%s' is declared twice", file, iface, kind, name);
        }
        g_hash_table_add(seen, key);
        return TRUE;
}

static gboolean check_interface(const char *file, GDBusInterfaceInfo *i, GError **error) {
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        if (!i->name || !g_dbus_is_interface_name(i->name) || strlen(i->name) > MAX_NAME)
                return fail(error, "%s: '%s' is not a valid D-Bus interface name", file, i->name ? i->name : "");

        for (guint k = 0; i->methods && i->methods[k]; k++) {
                GDBusMethodInfo *m = i->methods[k];
                if (!check_member(file, i->name, "method", m->name, seen, error))
                        return FALSE;
                g_autofree char *win = g_strdup_printf("%s: interface '%s' method '%s' in", file, i->name, m->name);
                g_autofree char *wout = g_strdup_printf("%s: interface '%s' method '%s' out", file, i->name, m->name);
                if (!check_args(win, m->in_args, error) || !check_args(wout, m->out_args, error))
                        return FALSE;
        }
        for (guint k = 0; i->signals && i->signals[k]; k++) {
                GDBusSignalInfo *s = i->signals[k];
                if (!check_member(file, i->name, "signal", s->name, seen, error))
                        return FALSE;
                g_autofree char *w = g_strdup_printf("%s: interface '%s' signal '%s'", file, i->name, s->name);
                if (!check_args(w, s->args, error))
                        return FALSE;
        }
        for (guint k = 0; i->properties && i->properties[k]; k++) {
                GDBusPropertyInfo *p = i->properties[k];
                if (!check_member(file, i->name, "property", p->name, seen, error))
                        return FALSE;
                if (!check_single_type(p->signature))
                        return fail(error, "%s: interface '%s' property '%s': invalid type '%s'",
                                    file, i->name, p->name, p->signature ? p->signature : "");
                if (p->flags & G_DBUS_PROPERTY_INFO_FLAGS_WRITABLE)
                        return fail(error, "%s: interface '%s' property '%s': writable properties are not supported",
                                    file, i->name, p->name);
        }
        return TRUE;
}

/* ---------------------------------------------------------------------------------------
 * output helpers
 */

static void emit_c_string(GString *o, const char *text) {
        g_string_append(o, "\"");
        for (const char *p = text; *p; p++) {
                switch (*p) {
                case '"':  g_string_append(o, "\\\""); break;
                case '\\': g_string_append(o, "\\\\"); break;
                case '\n': g_string_append(o, "\\n\"\n        \""); break;
                case '\t': g_string_append(o, "\\t"); break;
                default:   g_string_append_c(o, *p);
                }
        }
        g_string_append(o, "\"");
}

static gboolean write_file(const Options *opt, const char *name, GString *content, GError **error) {
        g_autofree char *path = g_build_filename(opt->output_dir, name, NULL);
        return g_file_set_contents(path, content->str, content->len, error);
}

static const char *header_banner =
        "/* Generated by clusterhub-codegen from the introspection XML. Do not edit. */\n";

/* "typed simple params": ", const char *key, char **keys" */
static void append_in_params(GString *o, GDBusArgInfo **args, guint n) {
        for (guint i = 0; i < n; i++) {
                g_autofree char *p = param_name(args[i]->name);
                g_string_append_printf(o, ", %s%s", c_in_type(args[i]->signature), p);
        }
}

static void append_out_params(GString *o, GDBusArgInfo **args) {
        for (guint i = 0; args && args[i]; i++) {
                g_autofree char *p = param_name(args[i]->name);
                g_string_append_printf(o, ", %s*ret_%s", c_out_type(args[i]->signature), p);
        }
}

/* Code appending typed simple args to message variable VAR. */
static void append_write_args(GString *o, GDBusArgInfo **args, guint n, const char *var, const char *indent) {
        for (guint i = 0; i < n; i++) {
                g_autofree char *p = param_name(args[i]->name);
                const char *sig = args[i]->signature;
                if (is_strv(sig))
                        g_string_append_printf(o, "%sr = append_strv(%s, '%c', %s);\n", indent, var, sig[1], p);
                else
                        g_string_append_printf(o, "%sr = sd_bus_message_append_basic(%s, '%c', %s%s);\n",
                                               indent, var, sig[0], is_string_type(sig) ? "" : "&", p);
                g_string_append_printf(o, "%sif (r < 0)\n%s        return r;\n", indent, indent);
        }
}

/* Code for the trailing args from index N: the append callback, or, when it is NULL and every
 * trailing argument is an array, empty arrays (e.g. "no options"). */
static void append_rest(GString *c, GDBusArgInfo **args, guint n, const char *var) {
        gboolean arrays = TRUE;
        for (guint i = n; args[i]; i++)
                if (args[i]->signature[0] != 'a')
                        arrays = FALSE;
        g_string_append(c, "        if (!append) {\n");
        if (arrays) {
                for (guint i = n; args[i]; i++) {
                        g_string_append_printf(c, "                r = sd_bus_message_open_container(%s, 'a', \"%s\");\n", var, args[i]->signature + 1);
                        g_string_append(c, "                if (r < 0)\n                        return r;\n");
                        g_string_append_printf(c, "                r = sd_bus_message_close_container(%s);\n", var);
                        g_string_append(c, "                if (r < 0)\n                        return r;\n");
                }
        } else
                g_string_append(c, "                return -EINVAL;\n");
        g_string_append_printf(c, "        } else {\n                r = append(%s, append_userdata);\n                if (r < 0)\n                        return r;\n        }\n", var);
}

/* ---------------------------------------------------------------------------------------
 * common
 */

static void gen_common(const Options *opt, Iface *f, GString *h, GString *c) {
        GDBusInterfaceInfo *i = f->info;

        g_string_append_printf(h, "%s#pragma once\n\n", header_banner);
        g_string_append_printf(h, "#define %s_INTERFACE \"%s\"\n", f->upper, i->name);
        for (guint k = 0; i->methods && i->methods[k]; k++) {
                g_autofree char *s = snake(i->methods[k]->name);
                g_autofree char *u = g_ascii_strup(s, -1);
                g_string_append_printf(h, "#define %s_METHOD_%s \"%s\"\n", f->upper, u, i->methods[k]->name);
        }
        for (guint k = 0; i->signals && i->signals[k]; k++) {
                g_autofree char *s = snake(i->signals[k]->name);
                g_autofree char *u = g_ascii_strup(s, -1);
                g_string_append_printf(h, "#define %s_SIGNAL_%s \"%s\"\n", f->upper, u, i->signals[k]->name);
        }
        for (guint k = 0; i->properties && i->properties[k]; k++) {
                g_autofree char *s = snake(i->properties[k]->name);
                g_autofree char *u = g_ascii_strup(s, -1);
                g_string_append_printf(h, "#define %s_PROPERTY_%s \"%s\"\n", f->upper, u, i->properties[k]->name);
        }
        g_string_append_printf(h, "\n/* The interface's introspection XML, as in %s. */\n", f->base);
        g_string_append_printf(h, "extern const char %s_introspection_xml[];\n", f->lower);

        g_string_append_printf(c, "%s#include \"%s-common.h\"\n\n", header_banner, f->file_base);
        g_string_append_printf(c, "__attribute__((visibility(\"default\")))\nconst char %s_introspection_xml[] =\n        ", f->lower);
        emit_c_string(c, f->xml_text);
        g_string_append(c, ";\n");
        (void) opt;
}

/* ---------------------------------------------------------------------------------------
 * client
 */

#define EXPORT "__attribute__((visibility(\"default\")))\n"

static void gen_client_decls(GString *h, Iface *f) {
        g_string_append_printf(h, "%s#pragma once\n\n#include <stdint.h>\n#include <systemd/sd-bus.h>\n\n#include \"%s-common.h\"\n\n",
                               header_banner, f->file_base);
        g_string_append(h,
                "#ifndef CH_CODEGEN_APPEND_FN\n#define CH_CODEGEN_APPEND_FN\n"
                "/* Writes the trailing (non-simple) arguments of a call or signal into M.  NULL sends\n"
                " * empty arrays when every trailing argument is an array (\"no options\"). */\n"
                "typedef int (*ch_append_fn)(sd_bus_message *m, void *userdata);\n#endif\n\n");
}

/* Prototype of the sync call (without trailing ';' or body). */
static void client_sync_proto(GString *o, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        guint ns = n_simple(m->in_args);
        g_string_append_printf(o, "int %s_call_%s(sd_bus *bus, const char *destination, const char *path", f->lower, s);
        append_in_params(o, m->in_args, ns);
        if (ns < n_args(m->in_args))
                g_string_append(o, ", ch_append_fn append, void *append_userdata");
        if (all_simple(m->out_args))
                append_out_params(o, m->out_args);
        else
                g_string_append(o, ", sd_bus_message **ret_reply");
        g_string_append(o, ", sd_bus_error *ret_error)");
}

static void client_async_cb_type(GString *o, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        g_string_append_printf(o, "typedef int (*%s_%s_reply_t)(sd_bus_message *reply, const sd_bus_error *error", f->lower, s);
        if (all_simple(m->out_args))
                for (guint i = 0; m->out_args && m->out_args[i]; i++) {
                        g_autofree char *p = param_name(m->out_args[i]->name);
                        g_string_append_printf(o, ", %s%s", c_in_type(m->out_args[i]->signature), p);
                }
        g_string_append(o, ", void *userdata);\n");
}

static void client_async_proto(GString *o, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        guint ns = n_simple(m->in_args);
        g_string_append_printf(o, "int %s_call_%s_async(sd_bus *bus, sd_bus_slot **ret_slot, const char *destination, const char *path", f->lower, s);
        append_in_params(o, m->in_args, ns);
        if (ns < n_args(m->in_args))
                g_string_append(o, ", ch_append_fn append, void *append_userdata");
        g_string_append_printf(o, ", %s_%s_reply_t callback, void *userdata, uint64_t timeout_usec)", f->lower, s);
}

/* Builds the method call message M; shared by sync and async bodies. */
static void client_build_call(GString *c, Iface *f, GDBusMethodInfo *m) {
        guint ns = n_simple(m->in_args);
        g_string_append_printf(c,
                "        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;\n"
                "        int r;\n\n"
                "        r = sd_bus_message_new_method_call(bus, &m, destination, path, %s_INTERFACE, \"%s\");\n"
                "        if (r < 0)\n                return r;\n", f->upper, m->name);
        append_write_args(c, m->in_args, ns, "m", "        ");
        if (ns < n_args(m->in_args))
                append_rest(c, m->in_args, ns, "m");
}

/* Reads simple outputs from REPLY into locals v_NAME (strings borrowed). */
static void read_locals(GString *c, GDBusArgInfo **args, const char *var, gboolean strv_owned) {
        for (guint i = 0; args && args[i]; i++) {
                const char *sig = args[i]->signature;
                if (is_strv(sig))
                        g_string_append_printf(c, "        _cleanup_(strv_freep) char **v_%s = NULL;\n", args[i]->name);
                else
                        g_string_append_printf(c, "        %sv_%s = 0;\n", c_in_type(sig), args[i]->name);
        }
        for (guint i = 0; args && args[i]; i++) {
                const char *sig = args[i]->signature;
                if (is_strv(sig))
                        g_string_append_printf(c, "        r = read_strv(%s, '%c', UINT64_MAX, &v_%s);\n", var, sig[1], args[i]->name);
                else
                        g_string_append_printf(c, "        r = sd_bus_message_read_basic(%s, '%c', &v_%s);\n", var, sig[0], args[i]->name);
                g_string_append(c, "        if (r < 0)\n                return r;\n");
                g_string_append(c, "        if (r == 0)\n                return -EBADMSG;\n");
        }
        (void) strv_owned;
}

static void gen_client_method(GString *h, GString *c, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        gboolean simple_out = all_simple(m->out_args);

        /* sync */
        g_string_append_printf(h, "/* %s.%s: blocking call. */\n", f->info->name, m->name);
        client_sync_proto(h, f, m);
        g_string_append(h, ";\n");
        g_string_append(c, EXPORT);
        client_sync_proto(c, f, m);
        g_string_append(c, " {\n        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;\n");
        client_build_call(c, f, m);
        g_string_append(c, "        r = sd_bus_call(bus, m, 0, ret_error, &reply);\n        if (r < 0)\n                return r;\n");
        if (simple_out) {
                read_locals(c, m->out_args, "reply", TRUE);
                /* assign outputs only on success */
                for (guint i = 0; m->out_args && m->out_args[i]; i++) {
                        GDBusArgInfo *a = m->out_args[i];
                        g_autofree char *p = param_name(a->name);
                        if (is_strv(a->signature))
                                g_string_append_printf(c, "        if (ret_%s)\n                *ret_%s = TAKE_PTR(v_%s);\n", p, p, a->name);
                        else if (is_string_type(a->signature)) {
                                g_string_append_printf(c, "        if (ret_%s) {\n                char *copy_ = strdup(v_%s);\n", p, a->name);
                                g_string_append(c, "                if (!copy_)\n                        return -ENOMEM;\n");
                                g_string_append_printf(c, "                *ret_%s = copy_;\n        }\n", p);
                        } else if (a->signature[0] == 'h') {
                                g_string_append_printf(c, "        if (ret_%s) {\n                int fd_ = fcntl(v_%s, F_DUPFD_CLOEXEC, 3);\n", p, a->name);
                                g_string_append(c, "                if (fd_ < 0)\n                        return -errno;\n");
                                g_string_append_printf(c, "                *ret_%s = fd_;\n        }\n", p);
                        } else
                                g_string_append_printf(c, "        if (ret_%s)\n                *ret_%s = v_%s;\n", p, p, a->name);
                }
        } else
                g_string_append(c,
                        "        r = sd_bus_message_rewind(reply, 1);\n        if (r < 0)\n                return r;\n"
                        "        if (ret_reply)\n                *ret_reply = TAKE_PTR(reply);\n");
        g_string_append(c, "        return 0;\n}\n\n");

        /* async */
        client_async_cb_type(h, f, m);
        g_string_append_printf(h, "/* %s.%s: asynchronous call; CALLBACK gets the reply or the error. ret_slot NULL: the call is bound to the bus. */\n",
                               f->info->name, m->name);
        client_async_proto(h, f, m);
        g_string_append(h, ";\n\n");

        g_string_append_printf(c, "static int %s_%s_reply_trampoline(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {\n", f->lower, s);
        g_string_append_printf(c, "        AsyncCall *a = userdata;\n        %s_%s_reply_t cb = (%s_%s_reply_t) a->callback;\n        int r = 0;\n\n        (void) r;\n", f->lower, s, f->lower, s);
        g_string_append(c, "        if (sd_bus_message_is_method_error(reply, NULL))\n");
        g_string_append(c, "                return cb(reply, sd_bus_message_get_error(reply)");
        for (guint i = 0; simple_out && m->out_args && m->out_args[i]; i++)
                g_string_append(c, is_strv(m->out_args[i]->signature) || is_string_type(m->out_args[i]->signature) ? ", NULL" : ", 0");
        g_string_append(c, ", a->userdata);\n");
        if (simple_out) {
                read_locals(c, m->out_args, "reply", FALSE);
                g_string_append(c, "        return cb(reply, NULL");
                for (guint i = 0; m->out_args && m->out_args[i]; i++)
                        g_string_append_printf(c, ", v_%s", m->out_args[i]->name);
                g_string_append(c, ", a->userdata);\n}\n\n");
        } else
                g_string_append(c, "        return cb(reply, NULL, a->userdata);\n}\n\n");

        g_string_append(c, EXPORT);
        client_async_proto(c, f, m);
        g_string_append(c, " {\n");
        client_build_call(c, f, m);
        g_string_append_printf(c, "        return async_call(bus, ret_slot, m, %s_%s_reply_trampoline, (void (*)(void)) callback, userdata, timeout_usec);\n}\n\n",
                               f->lower, s);
}

static void signal_handler_type(GString *o, Iface *f, GDBusSignalInfo *sig) {
        g_autofree char *s = snake(sig->name);
        guint ns = n_simple(sig->args);
        g_string_append_printf(o, "typedef int (*%s_%s_handler_t)(sd_bus_message *m, void *userdata", f->lower, s);
        append_in_params(o, sig->args, ns);
        g_string_append(o, ");\n");
}

static void gen_client_signal(GString *h, GString *c, Iface *f, GDBusSignalInfo *sig) {
        g_autofree char *s = snake(sig->name);
        guint ns = n_simple(sig->args);

        signal_handler_type(h, f, sig);
        for (int async = 0; async <= 1; async++) {
                g_autofree char *proto = g_strdup_printf(
                        "int %s_match_%s%s(sd_bus *bus, sd_bus_slot **ret_slot, const char *sender, const char *path, "
                        "const char *arg0, const char *arg0namespace, %s_%s_handler_t handler, void *userdata)",
                        f->lower, s, async ? "_async" : "", f->lower, s);
                g_string_append_printf(h, "/* Subscribe to %s.%s%s. SENDER, PATH, ARG0 (exact first argument) and ARG0NAMESPACE\n"
                                          " * (dotted prefix of the first argument) may be NULL; they go into the match rule so the bus filters. */\n%s;\n",
                                       f->info->name, sig->name, async ? " without waiting for the bus to confirm" : "", proto);
                g_string_append_printf(c, EXPORT "%s {\n", proto);
                g_string_append_printf(c,
                        "        _cleanup_free_ char *rule = NULL;\n"
                        "        int r = build_match(&rule, %s_INTERFACE, \"%s\", sender, path, arg0, arg0namespace);\n"
                        "        if (r < 0)\n                return r;\n"
                        "        return add_match(bus, ret_slot, rule, %d, %s_%s_signal_trampoline, (void (*)(void)) handler, userdata);\n}\n\n",
                        f->upper, sig->name, async, f->lower, s);
        }
        g_string_append(h, "\n");

        /* trampoline, placed before its users by writing into a separate prelude is not needed:
         * declare it static ahead of use */
        GString *t = g_string_new(NULL);
        g_string_append_printf(t, "static int %s_%s_signal_trampoline(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {\n", f->lower, s);
        g_string_append_printf(t, "        AsyncCall *a = userdata;\n        %s_%s_handler_t cb = (%s_%s_handler_t) a->callback;\n", f->lower, s, f->lower, s);
        if (ns > 0) {
                g_string_append(t, "        int r;\n");
                for (guint i = 0; i < ns; i++) {
                        const char *sg = sig->args[i]->signature;
                        if (is_strv(sg))
                                g_string_append_printf(t, "        _cleanup_(strv_freep) char **v_%s = NULL;\n", sig->args[i]->name);
                        else
                                g_string_append_printf(t, "        %sv_%s = 0;\n", c_in_type(sg), sig->args[i]->name);
                }
                for (guint i = 0; i < ns; i++) {
                        const char *sg = sig->args[i]->signature;
                        if (is_strv(sg))
                                g_string_append_printf(t, "        r = read_strv(m, '%c', UINT64_MAX, &v_%s);\n", sg[1], sig->args[i]->name);
                        else
                                g_string_append_printf(t, "        r = sd_bus_message_read_basic(m, '%c', &v_%s);\n", sg[0], sig->args[i]->name);
                        g_string_append(t, "        if (r <= 0)\n                return 0; /* not ours to judge: ignore malformed signals */\n");
                }
        }
        g_string_append(t, "        return cb(m, a->userdata");
        for (guint i = 0; i < ns; i++)
                g_string_append_printf(t, ", v_%s", sig->args[i]->name);
        g_string_append(t, ");\n}\n\n");
        g_string_prepend(c, t->str);
        g_string_free(t, TRUE);
}

static void gen_client_property(GString *h, GString *c, Iface *f, GDBusPropertyInfo *p) {
        g_autofree char *s = snake(p->name);
        const char *sig = p->signature;
        g_autofree char *proto = NULL;

        if (is_simple(sig))
                proto = g_strdup_printf("int %s_get_%s(sd_bus *bus, const char *destination, const char *path, %s*ret, sd_bus_error *ret_error)",
                                        f->lower, s, c_out_type(sig));
        else
                proto = g_strdup_printf("int %s_get_%s(sd_bus *bus, const char *destination, const char *path, sd_bus_message **ret_reply, sd_bus_error *ret_error)",
                                        f->lower, s);
        g_string_append_printf(h, "/* Property %s.%s (%s)%s. */\n%s;\n", f->info->name, p->name, sig,
                               is_simple(sig) ? "" : ": the reply is positioned inside the variant", proto);
        g_string_append_printf(c, EXPORT "%s {\n", proto);
        if (is_strv(sig))
                g_string_append_printf(c,
                        "        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;\n"
                        "        int r = sd_bus_get_property(bus, destination, path, %s_INTERFACE, \"%s\", ret_error, &reply, \"%s\");\n"
                        "        if (r < 0)\n                return r;\n"
                        "        r = read_strv(reply, '%c', UINT64_MAX, ret);\n"
                        "        return r < 0 ? r : 0;\n}\n\n",
                        f->upper, p->name, sig, sig[1]);
        else if (is_string_type(sig))
                g_string_append_printf(c, "        return sd_bus_get_property_string(bus, destination, path, %s_INTERFACE, \"%s\", ret_error, ret);\n}\n\n",
                                       f->upper, p->name);
        else if (is_basic(sig))
                g_string_append_printf(c, "        return sd_bus_get_property_trivial(bus, destination, path, %s_INTERFACE, \"%s\", ret_error, '%c', ret);\n}\n\n",
                                       f->upper, p->name, sig[0]);
        else
                g_string_append_printf(c, "        return sd_bus_get_property(bus, destination, path, %s_INTERFACE, \"%s\", ret_error, ret_reply, \"%s\");\n}\n\n",
                                       f->upper, p->name, sig);
}

/* Array reading and writing, shared by both runtimes.
 * read_strv: sd_bus_message_read_strv() of libsystemd <= 252 appends with strv_extend(), which
 * measures the list on every element: quadratic (one million keys took minutes).  This reads
 * element by element into a list that grows geometrically, and stops at the bound before
 * reading further.
 * append_strv: sd_bus_message_append_strv() writes "as" whatever the argument's type; "ao"
 * needs its own writer. */
#define STRV_READER \
        "/* Reads an array of TYPE ('s' or 'o') at M's position into a NULL-terminated list, in linear\n" \
        " * time.  An empty array gives an empty list, not NULL.  Returns 1, or 0 without reading further\n" \
        " * when the array has more than MAX elements, or a negative errno; *RET is set only on 1. */\n" \
        "static int read_strv(sd_bus_message *m, char type, uint64_t max, char ***ret) {\n" \
        "        _cleanup_(strv_freep) char **l = NULL;\n" \
        "        size_t n = 0, allocated = 16;\n" \
        "        const char *s;\n" \
        "        int r;\n\n" \
        "        r = sd_bus_message_enter_container(m, 'a', type == 'o' ? \"o\" : \"s\");\n" \
        "        if (r < 0)\n                return r;\n" \
        "        if (r == 0)\n                return -EBADMSG;\n" \
        "        l = calloc(allocated, sizeof(char *));\n" \
        "        if (!l)\n                return -ENOMEM;\n" \
        "        while ((r = sd_bus_message_read_basic(m, type, &s)) > 0) {\n" \
        "                if (n >= max)\n                        return 0;\n" \
        "                if (n + 1 >= allocated) {\n" \
        "                        char **grown = realloc(l, allocated * 2 * sizeof(char *));\n" \
        "                        if (!grown)\n                                return -ENOMEM;\n" \
        "                        l = grown;\n" \
        "                        allocated *= 2;\n" \
        "                }\n" \
        "                l[n] = strdup(s);\n" \
        "                if (!l[n])\n                        return -ENOMEM;\n" \
        "                l[++n] = NULL;\n" \
        "        }\n" \
        "        if (r < 0)\n                return r;\n" \
        "        r = sd_bus_message_exit_container(m);\n" \
        "        if (r < 0)\n                return r;\n" \
        "        *ret = l;\n" \
        "        l = NULL;\n" \
        "        return 1;\n" \
        "}\n\n" \
        "/* Appends the NULL-terminated list L (NULL: empty) as an array of TYPE ('s' or 'o'). */\n" \
        "static int append_strv(sd_bus_message *m, char type, char **l) {\n" \
        "        int r = sd_bus_message_open_container(m, 'a', type == 'o' ? \"o\" : \"s\");\n" \
        "        if (r < 0)\n                return r;\n" \
        "        for (char **i = l; i && *i; i++) {\n" \
        "                r = sd_bus_message_append_basic(m, type, *i);\n" \
        "                if (r < 0)\n                        return r;\n" \
        "        }\n" \
        "        return sd_bus_message_close_container(m);\n" \
        "}\n\n"

static const char *client_runtime =
        "typedef struct AsyncCall {\n"
        "        void (*callback)(void);\n"
        "        void *userdata;\n"
        "} AsyncCall;\n\n"
        "static inline void freep_(void *p) {\n        free(*(void **) p);\n}\n"
        "#define _cleanup_(f) __attribute__((cleanup(f)))\n#define _cleanup_free_ _cleanup_(freep_)\n"
        "#define TAKE_PTR(p) ({ __typeof__(p) _p_ = (p); (p) = NULL; _p_; })\n"
        "static inline void strv_freep(char ***l) {\n        if (*l) {\n                for (char **i = *l; *i; i++)\n                        free(*i);\n                free(*l);\n        }\n}\n\n"
        STRV_READER
        "/* Keep CALLBACK and USERDATA with SLOT; free them when the slot goes. */\n"
        "static int attach(sd_bus_slot *slot, AsyncCall *a, sd_bus_slot **ret_slot) {\n"
        "        sd_bus_slot_set_destroy_callback(slot, free);\n"
        "        if (ret_slot)\n                *ret_slot = slot;\n"
        "        else {\n                sd_bus_slot_set_floating(slot, 1);\n                sd_bus_slot_unref(slot);\n        }\n"
        "        return 0;\n}\n\n"
        "static int async_call(sd_bus *bus, sd_bus_slot **ret_slot, sd_bus_message *m, sd_bus_message_handler_t tramp,\n"
        "                      void (*callback)(void), void *userdata, uint64_t timeout_usec) {\n"
        "        sd_bus_slot *slot = NULL;\n"
        "        AsyncCall *a = malloc(sizeof(AsyncCall));\n"
        "        int r;\n\n"
        "        if (!a)\n                return -ENOMEM;\n"
        "        *a = (AsyncCall) { callback, userdata };\n"
        "        r = sd_bus_call_async(bus, &slot, m, tramp, a, timeout_usec);\n"
        "        if (r < 0) {\n                free(a);\n                return r;\n        }\n"
        "        return attach(slot, a, ret_slot);\n}\n\n"
        "static int add_match(sd_bus *bus, sd_bus_slot **ret_slot, const char *rule, int async, sd_bus_message_handler_t tramp,\n"
        "                     void (*callback)(void), void *userdata) {\n"
        "        sd_bus_slot *slot = NULL;\n"
        "        AsyncCall *a = malloc(sizeof(AsyncCall));\n"
        "        int r;\n\n"
        "        if (!a)\n                return -ENOMEM;\n"
        "        *a = (AsyncCall) { callback, userdata };\n"
        "        r = async ? sd_bus_add_match_async(bus, &slot, rule, tramp, NULL, a) : sd_bus_add_match(bus, &slot, rule, tramp, a);\n"
        "        if (r < 0) {\n                free(a);\n                return r;\n        }\n"
        "        return attach(slot, a, ret_slot);\n}\n\n"
        "/* Match rule values are quoted with '; a ' inside is written '\\'' (D-Bus specification). */\n"
        "static void append_quoted(FILE *f, const char *key, const char *value) {\n"
        "        fprintf(f, \",%s='\", key);\n"
        "        for (const char *p = value; *p; p++)\n"
        "                if (*p == '\\'')\n                        fputs(\"'\\\\''\", f);\n"
        "                else\n                        fputc(*p, f);\n"
        "        fputc('\\'', f);\n}\n\n"
        "static int build_match(char **ret, const char *interface, const char *member, const char *sender, const char *path,\n"
        "                       const char *arg0, const char *arg0namespace) {\n"
        "        char *buf = NULL;\n"
        "        size_t size = 0;\n"
        "        FILE *f = open_memstream(&buf, &size);\n\n"
        "        if (!f)\n                return -ENOMEM;\n"
        "        fputs(\"type='signal'\", f);\n"
        "        append_quoted(f, \"interface\", interface);\n"
        "        append_quoted(f, \"member\", member);\n"
        "        if (sender)\n                append_quoted(f, \"sender\", sender);\n"
        "        if (path)\n                append_quoted(f, \"path\", path);\n"
        "        if (arg0)\n                append_quoted(f, \"arg0\", arg0);\n"
        "        if (arg0namespace)\n                append_quoted(f, \"arg0namespace\", arg0namespace);\n"
        "        if (fclose(f) != 0) {\n                free(buf);\n                return -ENOMEM;\n        }\n"
        "        *ret = buf;\n        return 0;\n}\n\n";

static void gen_client(Iface *f, GString *h, GString *c) {
        GDBusInterfaceInfo *i = f->info;
        GString *body = g_string_new(NULL);

        gen_client_decls(h, f);
        for (guint k = 0; i->methods && i->methods[k]; k++)
                gen_client_method(h, body, f, i->methods[k]);
        /* signals prepend their trampolines to SIGS so they precede their users */
        GString *sigs = g_string_new(NULL);
        for (guint k = 0; i->signals && i->signals[k]; k++)
                gen_client_signal(h, sigs, f, i->signals[k]);
        for (guint k = 0; i->properties && i->properties[k]; k++)
                gen_client_property(h, body, f, i->properties[k]);

        g_string_append_printf(c, "%s#include <errno.h>\n#include <fcntl.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n#include \"%s-client.h\"\n\n",
                               header_banner, f->file_base);
        g_string_append(c, "#pragma GCC diagnostic ignored \"-Wunused-function\"\n#pragma GCC diagnostic ignored \"-Wcast-function-type\"\n\n");
        g_string_append(c, client_runtime);
        g_string_append(c, body->str);
        g_string_append(c, sigs->str);
        g_string_free(body, TRUE);
        g_string_free(sigs, TRUE);
}

/* ---------------------------------------------------------------------------------------
 * server
 */

static void handler_member(GString *o, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        g_autofree char *p = param_name(s);
        g_string_append_printf(o, "        int (*%s)(sd_bus_message *m, void *userdata, sd_bus_error *ret_error", p);
        append_in_params(o, m->in_args, n_simple(m->in_args));
        g_string_append(o, ");\n");
}

static void reply_proto(GString *o, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        guint ns = n_simple(m->out_args);
        g_string_append_printf(o, "int %s_reply_%s(sd_bus_message *call", f->lower, s);
        append_in_params(o, m->out_args, ns);
        if (ns < n_args(m->out_args))
                g_string_append(o, ", ch_append_fn append, void *append_userdata");
        g_string_append(o, ")");
}

static void emit_proto(GString *o, Iface *f, GDBusSignalInfo *sig) {
        g_autofree char *s = snake(sig->name);
        guint ns = n_simple(sig->args);
        g_string_append_printf(o, "int %s_emit_%s(sd_bus *bus, const char *destination, const char *path", f->lower, s);
        append_in_params(o, sig->args, ns);
        if (ns < n_args(sig->args))
                g_string_append(o, ", ch_append_fn append, void *append_userdata");
        g_string_append(o, ")");
}

static const char *method_flags(GDBusMethodInfo *m) {
        const char *noreply = g_dbus_annotation_info_lookup(m->annotations, "org.freedesktop.DBus.Method.NoReply");
        const char *depr = g_dbus_annotation_info_lookup(m->annotations, "org.freedesktop.DBus.Deprecated");
        gboolean nr = noreply && g_str_equal(noreply, "true");
        gboolean dp = depr && g_str_equal(depr, "true");
        if (nr && dp)
                return "SD_BUS_VTABLE_UNPRIVILEGED|SD_BUS_VTABLE_METHOD_NO_REPLY|SD_BUS_VTABLE_DEPRECATED";
        if (nr)
                return "SD_BUS_VTABLE_UNPRIVILEGED|SD_BUS_VTABLE_METHOD_NO_REPLY";
        if (dp)
                return "SD_BUS_VTABLE_UNPRIVILEGED|SD_BUS_VTABLE_DEPRECATED";
        return "SD_BUS_VTABLE_UNPRIVILEGED";
}

static const char *property_flags(GDBusInterfaceInfo *i, GDBusPropertyInfo *p) {
        const char *v = g_dbus_annotation_info_lookup(p->annotations, "org.freedesktop.DBus.Property.EmitsChangedSignal");
        if (!v)
                v = g_dbus_annotation_info_lookup(i->annotations, "org.freedesktop.DBus.Property.EmitsChangedSignal");
        if (!v || g_str_equal(v, "true"))
                return "SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE";
        if (g_str_equal(v, "invalidates"))
                return "SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION";
        if (g_str_equal(v, "const"))
                return "SD_BUS_VTABLE_PROPERTY_CONST";
        return "0";
}

static void sd_bus_args(GString *o, GDBusArgInfo **args, gboolean result) {
        if (!args || !args[0]) {
                g_string_append(o, result ? "SD_BUS_NO_RESULT" : "SD_BUS_NO_ARGS");
                return;
        }
        g_string_append(o, result ? "SD_BUS_RESULT(" : "SD_BUS_ARGS(");
        for (guint i = 0; args[i]; i++)
                g_string_append_printf(o, "%s\"%s\", %s", i ? ", " : "", args[i]->signature, args[i]->name);
        g_string_append(o, ")");
}

static void gen_server_method(GString *c, const Options *opt, Iface *f, GDBusMethodInfo *m) {
        g_autofree char *s = snake(m->name);
        g_autofree char *member = param_name(s);
        guint ns = n_simple(m->in_args);

        g_string_append_printf(c, "static int %s_handle_%s(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {\n", f->lower, s);
        g_string_append_printf(c, "        const ServerData *d = server_data(m);\n");
        for (guint i = 0; i < ns; i++) {
                const char *sg = m->in_args[i]->signature;
                if (is_strv(sg))
                        g_string_append_printf(c, "        _cleanup_(strv_freep) char **v_%s = NULL;\n", m->in_args[i]->name);
                else
                        g_string_append_printf(c, "        %sv_%s = 0;\n", c_in_type(sg), m->in_args[i]->name);
        }
        g_string_append(c, "        int r;\n\n");
        g_string_append_printf(c, "        if (!d || !((const %sHandlers *) d->handlers)->%s)\n", f->camel, member);
        g_string_append_printf(c, "                return sd_bus_error_setf(ret_error, \"%s\", \"%%s.%%s is not supported by this server\", %s_INTERFACE, \"%s\");\n",
                               opt->unsupported_error, f->upper, m->name);
        for (guint i = 0; i < ns; i++) {
                const char *sg = m->in_args[i]->signature;
                if (is_strv(sg)) {
                        g_string_append_printf(c, "        r = read_strv(m, '%c', max_strv, &v_%s);\n", sg[1], m->in_args[i]->name);
                        g_string_append_printf(c, "        if (r == 0)\n                return sd_bus_error_setf(ret_error, \"%s\", \"Argument '%s' of %s has more than %%\" PRIu64 \" elements.\", max_strv);\n",
                                               opt->limit_error, m->in_args[i]->name, m->name);
                } else
                        g_string_append_printf(c, "        r = sd_bus_message_read_basic(m, '%c', &v_%s);\n", sg[0], m->in_args[i]->name);
                g_string_append(c, "        if (r < 0)\n                return r;\n");
        }
        g_string_append_printf(c, "        r = ((const %sHandlers *) d->handlers)->%s(m, d->find ? userdata : d->userdata, ret_error", f->camel, member);
        for (guint i = 0; i < ns; i++)
                g_string_append_printf(c, ", v_%s", m->in_args[i]->name);
        g_string_append(c, ");\n        return r;\n}\n\n");
        g_string_append_printf(c, "static int %s_method_%s(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {\n"
                                  "        return server_result(m, %s_handle_%s(m, userdata, ret_error), ret_error);\n}\n\n",
                               f->lower, s, f->lower, s);
}

static void gen_server_reply(GString *h, GString *c, Iface *f, GDBusMethodInfo *m) {
        guint ns = n_simple(m->out_args);

        g_string_append_printf(h, "/* Reply to a %s call, now or later (keep a reference to CALL and return 1 from the handler). */\n", m->name);
        reply_proto(h, f, m);
        g_string_append(h, ";\n");
        g_string_append(c, EXPORT);
        reply_proto(c, f, m);
        g_string_append(c, " {\n        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;\n        int r;\n\n");
        g_string_append(c, "        if (!sd_bus_message_get_expect_reply(call))\n                return 0;\n");
        g_string_append(c, "        r = sd_bus_message_new_method_return(call, &reply);\n        if (r < 0)\n                return r;\n");
        append_write_args(c, m->out_args, ns, "reply", "        ");
        if (ns < n_args(m->out_args))
                append_rest(c, m->out_args, ns, "reply");
        g_string_append(c, "        return server_send(reply);\n}\n\n");
}

static void gen_server_signal(GString *h, GString *c, Iface *f, GDBusSignalInfo *sig) {
        guint ns = n_simple(sig->args);

        g_string_append_printf(h, "/* Emit %s from PATH; DESTINATION NULL broadcasts, a bus name unicasts. */\n", sig->name);
        emit_proto(h, f, sig);
        g_string_append(h, ";\n");
        g_string_append(c, EXPORT);
        emit_proto(c, f, sig);
        g_string_append(c, " {\n        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;\n        int r;\n\n");
        g_string_append_printf(c, "        r = sd_bus_message_new_signal(bus, &m, path, %s_INTERFACE, \"%s\");\n        if (r < 0)\n                return r;\n",
                               f->upper, sig->name);
        g_string_append(c, "        if (destination) {\n                r = sd_bus_message_set_destination(m, destination);\n                if (r < 0)\n                        return r;\n        }\n");
        append_write_args(c, sig->args, ns, "m", "        ");
        if (ns < n_args(sig->args))
                append_rest(c, sig->args, ns, "m");
        g_string_append(c, "        return server_send(m);\n}\n\n");
}

static void gen_server_property(GString *c, Iface *f, GDBusPropertyInfo *p) {
        g_autofree char *s = snake(p->name);
        g_string_append_printf(c,
                "static int %s_property_%s(sd_bus *bus, const char *path, const char *interface, const char *property,\n"
                "                sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {\n"
                "        const ServerData *d = server_data_of_bus(bus);\n\n"
                "        if (!d || !((const %sHandlers *) d->handlers)->prop_%s)\n"
                "                return -EOPNOTSUPP;\n"
                "        return ((const %sHandlers *) d->handlers)->prop_%s(reply, d->find ? userdata : d->userdata, ret_error);\n}\n\n",
                f->lower, s, f->camel, s, f->camel, s);
}

static const char *server_runtime =
        "typedef struct ServerData {\n"
        "        const void *handlers;\n"
        "        void *userdata;\n"
        "        sd_bus_object_find_t find;\n"
        "} ServerData;\n\n"
        "#define _cleanup_(f) __attribute__((cleanup(f)))\n"
        "static inline void strv_freep(char ***l) {\n        if (*l) {\n                for (char **i = *l; *i; i++)\n                        free(*i);\n                free(*l);\n        }\n}\n\n"
        STRV_READER
        "/* The vtable's registration data lives with the slot that sd-bus is running. */\n"
        "static const ServerData *server_data_of_bus(sd_bus *bus) {\n"
        "        sd_bus_slot *slot = sd_bus_get_current_slot(bus);\n"
        "        return slot ? sd_bus_slot_get_userdata(slot) : NULL;\n}\n\n"
        "static const ServerData *server_data(sd_bus_message *m) {\n"
        "        return server_data_of_bus(sd_bus_message_get_bus(m));\n}\n\n"
        "static int find_trampoline(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found, sd_bus_error *ret_error) {\n"
        "        const ServerData *d = userdata;\n"
        "        return d->find(bus, path, interface, d->userdata, found, ret_error);\n}\n\n"
        "/* Replies and signals go out through the hook when one is set, else at once. */\n"
        "static ch_send_hook_t send_hook;\n\n"
        "static int server_send(sd_bus_message *m) {\n"
        "        return send_hook ? send_hook(m) : sd_bus_send(NULL, m, NULL);\n}\n\n"
        "/* A call that failed (R < 0 or ERROR set): sd-bus would build and send the error reply\n"
        " * itself, past the hook; with a hook, build it here and send it through the hook. */\n"
        "static int server_result(sd_bus_message *call, int r, sd_bus_error *error) {\n"
        "        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;\n"
        "        int q;\n\n"
        "        if (!send_hook || (r >= 0 && !sd_bus_error_is_set(error)))\n                return r;\n"
        "        if (sd_bus_message_get_expect_reply(call)) {\n"
        "                if (sd_bus_error_is_set(error))\n"
        "                        q = sd_bus_message_new_method_error(call, &reply, error);\n"
        "                else\n"
        "                        q = sd_bus_message_new_method_errno(call, &reply, r, NULL);\n"
        "                if (q < 0)\n                        return r; /* sd-bus answers */\n"
        "                q = send_hook(reply);\n"
        "                if (q < 0)\n                        return q;\n"
        "        }\n"
        "        sd_bus_error_free(error); /* answered: sd-bus must not answer again */\n"
        "        return 1;\n}\n\n"
        "static int register_vtable(sd_bus *bus, sd_bus_slot **ret_slot, const char *path, const char *interface, const sd_bus_vtable *vtable,\n"
        "                           const void *handlers, sd_bus_object_find_t find, void *userdata) {\n"
        "        sd_bus_slot *slot = NULL;\n"
        "        ServerData *d = malloc(sizeof(ServerData));\n"
        "        int r;\n\n"
        "        if (!d)\n                return -ENOMEM;\n"
        "        *d = (ServerData) { handlers, userdata, find };\n"
        "        if (find)\n                r = sd_bus_add_fallback_vtable(bus, &slot, path, interface, vtable, find_trampoline, d);\n"
        "        else\n                r = sd_bus_add_object_vtable(bus, &slot, path, interface, vtable, d);\n"
        "        if (r < 0) {\n                free(d);\n                return r;\n        }\n"
        "        sd_bus_slot_set_destroy_callback(slot, free);\n"
        "        if (ret_slot)\n                *ret_slot = slot;\n"
        "        else {\n                sd_bus_slot_set_floating(slot, 1);\n                sd_bus_slot_unref(slot);\n        }\n"
        "        return 0;\n}\n\n";

static void gen_server(const Options *opt, Iface *f, GString *h, GString *c) {
        GDBusInterfaceInfo *i = f->info;

        g_string_append_printf(h, "%s#pragma once\n\n#include <stdint.h>\n#include <systemd/sd-bus.h>\n\n#include \"%s-common.h\"\n\n",
                               header_banner, f->file_base);
        g_string_append(h,
                "#ifndef CH_CODEGEN_APPEND_FN\n#define CH_CODEGEN_APPEND_FN\n"
                "typedef int (*ch_append_fn)(sd_bus_message *m, void *userdata);\n#endif\n\n");
        g_string_append(h,
                "#ifndef CH_CODEGEN_SEND_HOOK\n#define CH_CODEGEN_SEND_HOOK\n"
                "/* Sends M (a reply or a signal) as sd_bus_send(NULL, M, NULL) would, now or later\n"
                " * (sd_bus_message_ref(M) to keep it); returns 0 or a negative errno. */\n"
                "typedef int (*ch_send_hook_t)(sd_bus_message *m);\n#endif\n\n");
        g_string_append_printf(h,
                "/* The implementation of %s. A handler gets the leading simple arguments typed; the message\n"
                " * M is positioned at the first other argument. It replies with %s_reply_*() (at once, or later\n"
                " * after sd_bus_message_ref(M), returning 1) or fails with ret_error / a negative errno.\n"
                " * A NULL handler answers %s. Property getters append the value to REPLY. */\n",
                i->name, f->lower, opt->unsupported_error);
        g_string_append_printf(h, "typedef struct %sHandlers {\n", f->camel);
        for (guint k = 0; i->methods && i->methods[k]; k++)
                handler_member(h, i->methods[k]);
        for (guint k = 0; i->properties && i->properties[k]; k++) {
                g_autofree char *s = snake(i->properties[k]->name);
                g_string_append_printf(h, "        int (*prop_%s)(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);\n", s);
        }
        g_string_append_printf(h, "} %sHandlers;\n\n", f->camel);

        if (reads_strv(i))
                g_string_append_printf(h,
                        "/* Most elements an array argument (as, ao) may have; a call with more fails with\n"
                        " * %s before the rest is read.  Default %s_MAX_STRV_DEFAULT.\n"
                        " * Process-wide for this interface; set it before serving. */\n"
                        "#define %s_MAX_STRV_DEFAULT UINT64_C(1000000)\n"
                        "void %s_set_max_strv(uint64_t max);\n\n",
                        opt->limit_error, f->upper, f->upper, f->lower);
        g_string_append_printf(h,
                "/* Send this interface's replies and signals through HOOK instead of sd_bus_send(); the error\n"
                " * replies of failed calls (a handler's negative return or ret_error) go through it too.\n"
                " * NULL (the default) sends at once.  Process-wide for this interface; set it before serving. */\n"
                "void %s_set_send_hook(ch_send_hook_t hook);\n\n", f->lower);
        g_string_append_printf(h, "/* The vtable; its slot's userdata must be what %s_add_object/_add_fallback set up. */\n", f->lower);
        g_string_append_printf(h, "extern const sd_bus_vtable %s_vtable[];\n\n", f->lower);
        g_string_append_printf(h, "/* Serve %s at PATH with HANDLERS; they receive USERDATA. */\n"
                                  "int %s_add_object(sd_bus *bus, sd_bus_slot **ret_slot, const char *path, const %sHandlers *handlers, void *userdata);\n",
                               i->name, f->lower, f->camel);
        g_string_append_printf(h, "/* Serve %s below PREFIX; FIND (called with USERDATA) maps a path to the object the handlers receive. */\n"
                                  "int %s_add_fallback(sd_bus *bus, sd_bus_slot **ret_slot, const char *prefix, const %sHandlers *handlers,\n"
                                  "                sd_bus_object_find_t find, void *userdata);\n\n",
                               i->name, f->lower, f->camel);

        g_string_append_printf(c, "%s#include <errno.h>\n#include <inttypes.h>\n#include <stdlib.h>\n#include <string.h>\n\n#include \"%s-server.h\"\n\n",
                               header_banner, f->file_base);
        g_string_append(c, "#pragma GCC diagnostic ignored \"-Wunused-function\"\n\n");
        g_string_append(c, server_runtime);
        if (reads_strv(i))
                g_string_append_printf(c, "static uint64_t max_strv = %s_MAX_STRV_DEFAULT;\n\n"
                                          EXPORT "void %s_set_max_strv(uint64_t max) {\n        max_strv = max;\n}\n\n",
                                       f->upper, f->lower);
        g_string_append_printf(c, EXPORT "void %s_set_send_hook(ch_send_hook_t hook) {\n        send_hook = hook;\n}\n\n", f->lower);
        for (guint k = 0; i->methods && i->methods[k]; k++)
                gen_server_method(c, opt, f, i->methods[k]);
        for (guint k = 0; i->properties && i->properties[k]; k++)
                gen_server_property(c, f, i->properties[k]);
        for (guint k = 0; i->methods && i->methods[k]; k++)
                gen_server_reply(h, c, f, i->methods[k]);
        for (guint k = 0; i->signals && i->signals[k]; k++)
                gen_server_signal(h, c, f, i->signals[k]);

        /* the vtable, at the bottom */
        g_string_append_printf(c, EXPORT "const sd_bus_vtable %s_vtable[] = {\n        SD_BUS_VTABLE_START(0),\n", f->lower);
        for (guint k = 0; i->methods && i->methods[k]; k++) {
                GDBusMethodInfo *m = i->methods[k];
                g_autofree char *s = snake(m->name);
                g_string_append_printf(c, "        SD_BUS_METHOD_WITH_ARGS(\"%s\", ", m->name);
                sd_bus_args(c, m->in_args, FALSE);
                g_string_append(c, ", ");
                sd_bus_args(c, m->out_args, TRUE);
                g_string_append_printf(c, ", %s_method_%s, %s),\n", f->lower, s, method_flags(m));
        }
        for (guint k = 0; i->signals && i->signals[k]; k++) {
                GDBusSignalInfo *sg = i->signals[k];
                g_string_append_printf(c, "        SD_BUS_SIGNAL_WITH_ARGS(\"%s\", ", sg->name);
                sd_bus_args(c, sg->args, FALSE);
                g_string_append(c, ", 0),\n");
        }
        for (guint k = 0; i->properties && i->properties[k]; k++) {
                GDBusPropertyInfo *p = i->properties[k];
                g_autofree char *s = snake(p->name);
                g_string_append_printf(c, "        SD_BUS_PROPERTY(\"%s\", \"%s\", %s_property_%s, 0, %s),\n",
                                       p->name, p->signature, f->lower, s, property_flags(i, p));
        }
        g_string_append(c, "        SD_BUS_VTABLE_END\n};\n\n");

        g_string_append_printf(c, EXPORT "int %s_add_object(sd_bus *bus, sd_bus_slot **ret_slot, const char *path, const %sHandlers *handlers, void *userdata) {\n"
                                  "        return register_vtable(bus, ret_slot, path, %s_INTERFACE, %s_vtable, handlers, NULL, userdata);\n}\n\n",
                               f->lower, f->camel, f->upper, f->lower);
        g_string_append_printf(c, EXPORT "int %s_add_fallback(sd_bus *bus, sd_bus_slot **ret_slot, const char *prefix, const %sHandlers *handlers,\n"
                                  "                sd_bus_object_find_t find, void *userdata) {\n"
                                  "        if (!find)\n                return -EINVAL;\n"
                                  "        return register_vtable(bus, ret_slot, prefix, %s_INTERFACE, %s_vtable, handlers, find, userdata);\n}\n",
                               f->lower, f->camel, f->upper, f->lower);
}

/* ---------------------------------------------------------------------------------------
 * errors
 */

typedef struct ErrorDef {
        char *name;
        char *errno_name;
        GString *doc;
} ErrorDef;

typedef struct ErrorParse {
        char *prefix;
        GPtrArray *errors;
        ErrorDef *current;
} ErrorParse;

static void error_def_free(gpointer p) {
        ErrorDef *e = p;
        g_free(e->name);
        g_free(e->errno_name);
        g_string_free(e->doc, TRUE);
        g_free(e);
}

static void errors_start(GMarkupParseContext *ctx, const char *element, const char **names, const char **values,
                         gpointer user, GError **error) {
        ErrorParse *ep = user;
        const char *name = NULL, *errno_name = NULL, *prefix = NULL;

        if (g_str_equal(element, "errors")) {
                if (!g_markup_collect_attributes(element, names, values, error,
                                                 G_MARKUP_COLLECT_STRING, "prefix", &prefix, G_MARKUP_COLLECT_INVALID))
                        return;
                if (!g_dbus_is_interface_name(prefix)) {
                        g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT, "<errors prefix='%s'>: not a valid D-Bus name", prefix);
                        return;
                }
                ep->prefix = g_strdup(prefix);
        } else if (g_str_equal(element, "error")) {
                if (!g_markup_collect_attributes(element, names, values, error,
                                                 G_MARKUP_COLLECT_STRING, "name", &name,
                                                 G_MARKUP_COLLECT_STRING, "errno", &errno_name, G_MARKUP_COLLECT_INVALID))
                        return;
                if (!is_c_identifier(name) || !g_ascii_isupper(name[0]) || !g_str_has_prefix(errno_name, "E") || !is_c_identifier(errno_name)) {
                        g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
                                    "<error name='%s' errno='%s'>: name must be CamelCase, errno an E... constant", name, errno_name);
                        return;
                }
                ErrorDef *e = g_new0(ErrorDef, 1);
                e->name = g_strdup(name);
                e->errno_name = g_strdup(errno_name);
                e->doc = g_string_new(NULL);
                g_ptr_array_add(ep->errors, e);
                ep->current = e;
        } else
                g_set_error(error, G_MARKUP_ERROR, G_MARKUP_ERROR_UNKNOWN_ELEMENT, "unknown element <%s>", element);
        (void) ctx;
}

static void errors_end(GMarkupParseContext *ctx, const char *element, gpointer user, GError **error) {
        ErrorParse *ep = user;
        if (g_str_equal(element, "error"))
                ep->current = NULL;
        (void) ctx, (void) error;
}

static void errors_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user, GError **error) {
        ErrorParse *ep = user;
        if (ep->current)
                g_string_append_len(ep->current->doc, text, len);
        (void) ctx, (void) error;
}

static gboolean parse_errors(const char *file, ErrorParse *ep, GError **error) {
        g_autofree char *text = NULL;
        gsize len;
        GMarkupParser parser = { errors_start, errors_end, errors_text, NULL, NULL };
        gboolean ok;

        if (!g_file_get_contents(file, &text, &len, error))
                return FALSE;
        GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, ep, NULL);
        ok = g_markup_parse_context_parse(ctx, text, len, error) && g_markup_parse_context_end_parse(ctx, error);
        g_markup_parse_context_free(ctx);
        if (!ok) {
                g_prefix_error(error, "%s: ", file);
                return FALSE;
        }
        if (!ep->prefix)
                return fail(error, "%s: no <errors prefix=...> element", file);
        return TRUE;
}

static gboolean write_errors(const Options *opt, const ErrorParse *ep, GError **error) {
        g_autofree char *up = g_ascii_strup(opt->ns, -1);
        g_autofree char *hn = g_strdup_printf("%s-errors.h", opt->ns);
        g_autofree char *cn = g_strdup_printf("%s-errors.c", opt->ns);
        GString *h = g_string_new(NULL), *c = g_string_new(NULL);
        gboolean ok;

        g_string_append_printf(h, "%s#pragma once\n\n#include <systemd/sd-bus.h>\n\n", header_banner);
        for (guint k = 0; k < ep->errors->len; k++) {
                ErrorDef *e = ep->errors->pdata[k];
                g_autofree char *s = snake(e->name);
                g_autofree char *u = g_ascii_strup(s, -1);
                g_autofree char *doc = g_strstrip(g_strdup(e->doc->str));
                g_string_append_printf(h, "/* %s (%s) */\n#define %s_ERROR_%s \"%s.%s\"\n", doc, e->errno_name, up, u, ep->prefix, e->name);
        }
        g_string_append_printf(h, "\n/* Name to errno, for sd_bus_error_add_map(). */\nextern const sd_bus_error_map %s_error_map[];\n\n", opt->ns);
        g_string_append_printf(h, "/* The error name for a negative or positive errno from the table, or NULL. */\nconst char *%s_error_name_from_errno(int error);\n", opt->ns);

        g_string_append_printf(c, "%s#include <errno.h>\n#include <stdlib.h>\n\n#include \"%s-errors.h\"\n\n", header_banner, opt->ns);
        g_string_append_printf(c, EXPORT "const sd_bus_error_map %s_error_map[] = {\n", opt->ns);
        for (guint k = 0; k < ep->errors->len; k++) {
                ErrorDef *e = ep->errors->pdata[k];
                g_string_append_printf(c, "        SD_BUS_ERROR_MAP(\"%s.%s\", %s),\n", ep->prefix, e->name, e->errno_name);
        }
        g_string_append(c, "        SD_BUS_ERROR_MAP_END\n};\n\n");
        g_string_append_printf(c, EXPORT "const char *%s_error_name_from_errno(int error) {\n        switch (abs(error)) {\n", opt->ns);
        for (guint k = 0; k < ep->errors->len; k++) {
                ErrorDef *e = ep->errors->pdata[k];
                g_string_append_printf(c, "        case %s: return \"%s.%s\";\n", e->errno_name, ep->prefix, e->name);
        }
        g_string_append(c, "        default: return NULL;\n        }\n}\n");

        ok = write_file(opt, hn, h, error) && write_file(opt, cn, c, error);
        g_string_free(h, TRUE);
        g_string_free(c, TRUE);
        return ok;
}

static gboolean gen_errors(const Options *opt, GError **error) {
        ErrorParse ep = { .errors = g_ptr_array_new_with_free_func(error_def_free) };
        gboolean ok = parse_errors(opt->errors_file, &ep, error) && write_errors(opt, &ep, error);

        g_ptr_array_unref(ep.errors);
        g_free(ep.prefix);
        return ok;
}

/* ---------------------------------------------------------------------------------------
 * driver
 */

static void iface_names(const Options *opt, Iface *f) {
        const char *n = f->info->name;
        if (opt->iface_prefix && g_str_has_prefix(n, opt->iface_prefix))
                n += strlen(opt->iface_prefix);
        g_autofree char *dotless = g_strdelimit(g_strdup(n), ".", '_');
        f->base = snake(dotless);
        f->lower = g_strdup_printf("%s_%s", opt->ns, f->base);
        f->upper = g_ascii_strup(f->lower, -1);
        f->file_base = g_strdelimit(g_strdup(f->lower), "_", '-');
        GString *camel = g_string_new(NULL);
        gboolean up = TRUE;
        for (const char *p = f->lower; *p; p++) {
                if (*p == '_') {
                        up = TRUE;
                        continue;
                }
                g_string_append_c(camel, up ? g_ascii_toupper(*p) : *p);
                up = FALSE;
        }
        f->camel = g_string_free(camel, FALSE);
}

static gboolean gen_file(const Options *opt, const char *file, GError **error) {
        g_autofree char *text = NULL;
        g_autoptr(GDBusNodeInfo) node = NULL;

        if (!g_file_get_contents(file, &text, NULL, error))
                return FALSE;
        node = g_dbus_node_info_new_for_xml(text, error);
        if (!node) {
                g_prefix_error(error, "%s: ", file);
                return FALSE;
        }
        if (!node->interfaces || !node->interfaces[0])
                return fail(error, "%s: no <interface> element", file);
        for (guint k = 0; node->interfaces[k]; k++)
                if (!check_interface(file, node->interfaces[k], error))
                        return FALSE;

        for (guint k = 0; node->interfaces[k]; k++) {
                Iface f = { .info = node->interfaces[k], .xml_file = file, .xml_text = text };
                GString *parts[6];
                const char *suffix[6] = { "-common.h", "-common.c", "-client.h", "-client.c", "-server.h", "-server.c" };
                gboolean ok = TRUE;

                iface_names(opt, &f);
                for (int j = 0; j < 6; j++)
                        parts[j] = g_string_new(NULL);
                gen_common(opt, &f, parts[0], parts[1]);
                gen_client(&f, parts[2], parts[3]);
                gen_server(opt, &f, parts[4], parts[5]);
                for (int j = 0; j < 6; j++) {
                        g_autofree char *name = g_strconcat(f.file_base, suffix[j], NULL);
                        if (ok)
                                ok = write_file(opt, name, parts[j], error);
                        g_string_free(parts[j], TRUE);
                }
                g_free(f.base);
                g_free(f.lower);
                g_free(f.upper);
                g_free(f.camel);
                g_free(f.file_base);
                if (!ok)
                        return FALSE;
        }
        return TRUE;
}

/* GOption allocates the strings it stores; free those that are not our defaults. */
static void options_free(Options *opt, const Options *defaults) {
        if (opt->ns != defaults->ns)
                g_free((char *) opt->ns);
        if (opt->iface_prefix != defaults->iface_prefix)
                g_free((char *) opt->iface_prefix);
        if (opt->unsupported_error != defaults->unsupported_error)
                g_free((char *) opt->unsupported_error);
        if (opt->limit_error != defaults->limit_error)
                g_free((char *) opt->limit_error);
        if (opt->output_dir != defaults->output_dir)
                g_free((char *) opt->output_dir);
        g_free((char *) opt->errors_file);
}

int main(int argc, char *argv[]) {
        Options opt = {
                .ns = "ch",
                .iface_prefix = NULL,
                .unsupported_error = "org.freedesktop.DBus.Error.NotSupported",
                .limit_error = "org.freedesktop.DBus.Error.LimitsExceeded",
                .output_dir = ".",
        };
        const Options defaults = opt;
        gboolean version = FALSE;
        g_auto(GStrv) files = NULL;
        GOptionEntry entries[] = {
                { "c-namespace", 0, 0, G_OPTION_ARG_STRING, &opt.ns, "Prefix of generated C names (default: ch)", "NS" },
                { "interface-prefix", 0, 0, G_OPTION_ARG_STRING, &opt.iface_prefix, "Strip PREFIX from interface names", "PREFIX" },
                { "unsupported-error", 0, 0, G_OPTION_ARG_STRING, &opt.unsupported_error, "Error name a NULL handler answers", "NAME" },
                { "limit-error", 0, 0, G_OPTION_ARG_STRING, &opt.limit_error, "Error name answering an array argument over the bound", "NAME" },
                { "output-dir", 'o', 0, G_OPTION_ARG_FILENAME, &opt.output_dir, "Write files to DIR (default: .)", "DIR" },
                { "errors", 0, 0, G_OPTION_ARG_FILENAME, &opt.errors_file, "Generate NS-errors.[ch] from this error list", "FILE" },
                { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
                { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &files, NULL, "FILE.xml..." },
                { NULL, 0, 0, 0, NULL, NULL, NULL },
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("[FILE.xml...]");
        g_autoptr(GError) error = NULL;

        g_option_context_set_summary(ctx,
                "Validate D-Bus introspection XML and generate sd-bus C client stubs and server skeletons.\n"
                "For each interface: NS-NAME-{common,client,server}.{h,c} in --output-dir.");
        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                fprintf(stderr, "clusterhub-codegen: %s\n", error->message);
                return 2;
        }
        if (version) {
                printf("clusterhub-codegen %s\n", CODEGEN_VERSION);
                options_free(&opt, &defaults);
                return 0;
        }
        if (!is_c_identifier(opt.ns)) {
                fprintf(stderr, "clusterhub-codegen: --c-namespace '%s' is not a C identifier\n", opt.ns);
                return 2;
        }
        if (!opt.errors_file && (!files || !files[0])) {
                fprintf(stderr, "clusterhub-codegen: no input files (see --help)\n");
                return 2;
        }
        int ret = 0;
        if (opt.errors_file && !gen_errors(&opt, &error))
                ret = 1;
        for (guint k = 0; ret == 0 && files && files[k]; k++)
                if (!gen_file(&opt, files[k], &error))
                        ret = 1;
        if (ret)
                fprintf(stderr, "clusterhub-codegen: %s\n", error->message);
        options_free(&opt, &defaults);
        return ret;
}
