/* SPDX-License-Identifier: MIT */
/*
 * The JSON reader and base64 of hubctl restore (cli/json.c), alone:
 *  - documents parse into the tree, numbers keep their text (64-bit integers exact), escapes
 *    and surrogate pairs decode, positions count lines and characters;
 *  - what the reader refuses, with the line and column it names: trailing commas, leading
 *    zeros, lone surrogates, NUL (raw or \u0000), raw control characters, invalid UTF-8,
 *    duplicate member names (in small and large objects), nesting past the bound (100,000 deep
 *    without a crash), trailing text;
 *  - base64 round-trips every length and byte, and refuses what is not canonical.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "json.h"

static JsonValue parse_ok(const char *text) {
        JsonValue v = {};
        char *error = NULL;
        int r = json_parse(text, strlen(text), 64, &v, &error);
        if (r < 0)
                g_error("'%s' did not parse: %s", text, error ? error : "?");
        g_assert_null(error);
        return v;
}

/* TEXT (LEN bytes) must fail with an error that contains WANT. */
static void parse_fails_len(const char *text, size_t len, unsigned depth, const char *want) {
        JsonValue v = {};
        char *error = NULL;
        int r = json_parse(text, len, depth, &v, &error);

        if (r != -EINVAL || !error || !strstr(error, want))
                g_error("'%.*s': want an error with '%s', got %d '%s'", (int) (len < 80 ? len : 80), text, want, r,
                        error ? error : "(none)");
        g_assert_cmpint(v.type, ==, JSON_NULL);
        free(error);
}

static void parse_fails(const char *text, const char *want) {
        parse_fails_len(text, strlen(text), 64, want);
}

static void test_tree(void) {
        JsonValue v = parse_ok(" {\"a\": [1, -0.5e3, true, false, null, \"x\"],\n \"b\": {}, \"t\": 18446744073709551615} ");
        const JsonValue *a, *t;

        g_assert_cmpint(v.type, ==, JSON_OBJECT);
        g_assert_cmpuint(v.n, ==, 3);
        g_assert_cmpstr(v.keys[0], ==, "a");
        a = json_object_get(&v, "a");
        g_assert_nonnull(a);
        g_assert_cmpint(a->type, ==, JSON_ARRAY);
        g_assert_cmpuint(a->n, ==, 6);
        g_assert_cmpstr(a->items[1].text, ==, "-0.5e3");
        g_assert_true(a->items[2].type == JSON_BOOL && a->items[2].boolean);
        g_assert_true(a->items[3].type == JSON_BOOL && !a->items[3].boolean);
        g_assert_cmpint(a->items[4].type, ==, JSON_NULL);
        g_assert_cmpstr(a->items[5].text, ==, "x");
        g_assert_cmpint(json_object_get(&v, "b")->type, ==, JSON_OBJECT);
        g_assert_cmpuint(json_object_get(&v, "b")->n, ==, 0);
        t = json_object_get(&v, "t");
        g_assert_cmpstr(t->text, ==, "18446744073709551615"); /* not rounded through a double */
        g_assert_null(json_object_get(&v, "nope"));
        g_assert_null(json_object_get(a, "a"));
        json_value_clear(&v);
        g_assert_cmpint(v.type, ==, JSON_NULL);

        v = parse_ok("\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\t\\b\\f\\r\"");
        g_assert_cmpstr(v.text, ==, "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\t\b\f\r");
        g_assert_cmpuint(v.len, ==, strlen(v.text));
        json_value_clear(&v);

        v = parse_ok("42");
        g_assert_cmpint(v.type, ==, JSON_NUMBER);
        json_value_clear(&v);
}

static void test_positions(void) {
        const char *text = "{\n  \"é\": [1,\n    x]}";
        unsigned line, column;

        /* columns count characters: é is two bytes, one column */
        parse_fails(text, "line 3, column 5: expected a value, found 'x'");
        json_position("ab\ncé\nd", 7, &line, &column);
        g_assert_cmpuint(line, ==, 3);
        g_assert_cmpuint(column, ==, 1);
        json_position("ab\ncéd", 6, &line, &column);
        g_assert_cmpuint(line, ==, 2);
        g_assert_cmpuint(column, ==, 3);

        JsonValue v = parse_ok("[1,\n [2]]");
        json_position("[1,\n [2]]", v.items[1].offset, &line, &column);
        g_assert_cmpuint(line, ==, 2);
        g_assert_cmpuint(column, ==, 2);
        json_value_clear(&v);
}

static void test_refused(void) {
        parse_fails("", "line 1, column 1: expected a value, found the end of the input");
        parse_fails("[1,]", "expected a value, found ']'");
        parse_fails("{\"a\":1,}", "expected a string (a member name), found '}'");
        parse_fails("{\"a\" 1}", "line 1, column 6: expected ':', found '1'");
        parse_fails("[01]", "expected ',' or ']', found '1'");
        parse_fails("[1.]", "a digit after '.'");
        parse_fails("[1e]", "a digit in the exponent");
        parse_fails("[-]", "expected a digit");
        parse_fails("[+1]", "expected a value, found '+'");
        parse_fails("[.5]", "expected a value");
        parse_fails("[NaN]", "expected a value");
        parse_fails("[tru]", "expected a value");
        parse_fails("{} x", "the end of the input after the document");
        parse_fails("{}{}", "the end of the input after the document");
        parse_fails("\"abc", "unterminated string");
        parse_fails("\"a\\", "unterminated string");
        parse_fails("\"\\x\"", "a bad escape");
        parse_fails("\"\\u12\"", "a bad escape");
        parse_fails("\"\\ud800\"", "a lone surrogate (\\ud800)");
        parse_fails("\"\\ud800\\u0041\"", "a lone surrogate");
        parse_fails("\"\\udc00\"", "a lone surrogate (\\udc00)");
        parse_fails("\"\\u0000\"", "D-Bus strings cannot hold NUL");
        parse_fails("\"a\tb\"", "a control character (0x09) in a string");
        parse_fails("\"\xff\"", "not UTF-8");
        parse_fails("\"\xc0\xaf\"", "not UTF-8"); /* overlong '/' */
        parse_fails("\"\xed\xa0\x80\"", "not UTF-8"); /* a surrogate in UTF-8 */
        parse_fails_len("[1,\0 2]", 7, 64, "found a NUL byte");
        parse_fails_len("\"a\0b\"", 5, 64, "a NUL byte in a string");
        parse_fails("{\"a\":1,\"b\":2,\"a\":3}", "line 1, column 1: the member name \"a\" appears twice");

        /* a large object: the duplicate check sorts */
        GString *big = g_string_new("{");
        for (int i = 0; i < 1000; i++)
                g_string_append_printf(big, "%s\"k%d\":%d", i ? "," : "", i, i);
        g_string_append(big, ",\"k500\":0}");
        parse_fails(big->str, "the member name \"k500\" appears twice");
        g_string_free(big, TRUE);
}

static void test_depth(void) {
        size_t n = 100000;
        char *deep = g_malloc(2 * n + 1);
        JsonValue v = {};
        char *error = NULL;

        memset(deep, '[', n);
        memset(deep + n, ']', n);
        deep[2 * n] = 0;
        parse_fails_len(deep, 2 * n, 512, "nested deeper than 512 arrays and objects");
        /* exactly at the bound parses */
        g_assert_cmpint(json_parse(deep + n - 512, 1024, 512, &v, &error), ==, 0);
        json_value_clear(&v);
        g_assert_cmpint(json_parse(deep + n - 513, 1026, 512, &v, &error), ==, -EINVAL);
        free(error);
        g_free(deep);
}

static void test_utf8(void) {
        g_assert_cmpint(utf8_invalid_at("abc", 3), ==, -1);
        g_assert_cmpint(utf8_invalid_at("a\xc3\xa9", 3), ==, -1);
        g_assert_cmpint(utf8_invalid_at("a\xc3", 2), ==, 1);
        g_assert_cmpint(utf8_invalid_at("ab\0", 3), ==, 2);
        g_assert_cmpint(utf8_invalid_at("\xf4\x90\x80\x80", 4), ==, 0); /* past U+10FFFF */
        g_assert_cmpint(utf8_invalid_at("\xf0\x9f\x98\x80", 4), ==, -1);
}

static void test_base64(void) {
        uint8_t data[300];
        GRand *rand = g_rand_new_with_seed(1);

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = i < 256 ? (uint8_t) i : (uint8_t) g_rand_int_range(rand, 0, 256);
        for (size_t len = 0; len <= sizeof(data); len++) {
                char *text = NULL;
                size_t size = 0, n = 0;
                uint8_t *back = NULL;
                FILE *f = open_memstream(&text, &size);

                g_assert_nonnull(f);
                base64_write(f, data, len);
                g_assert_cmpint(fclose(f), ==, 0);
                g_assert_cmpuint(size, ==, (len + 2) / 3 * 4);
                g_assert_cmpint(base64_decode(text, size, &back, &n), ==, 0);
                g_assert_cmpmem(back, n, data, len);
                free(back);
                free(text);
        }
        g_rand_free(rand);

        static const char *const refused[] = {
                "A", "AB", "ABC", "AB=", "A===", "====", "AB=C", "AB==AB==", "AB*=", "AB==\n", "AB ==", "AAE",
                "AB==", /* 'B' leaves bits that a canonical encoding has zero */
                "AAF=",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
                uint8_t *back = NULL;
                size_t n = 0;
                if (base64_decode(refused[i], strlen(refused[i]), &back, &n) != -EINVAL)
                        g_error("base64 '%s' was accepted", refused[i]);
        }
        uint8_t *back = NULL;
        size_t n = 99;
        g_assert_cmpint(base64_decode("", 0, &back, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        free(back);
        g_assert_cmpint(base64_decode("AP8=", 4, &back, &n), ==, 0);
        g_assert_cmpmem(back, n, "\x00\xff", 2);
        free(back);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/json/tree", test_tree);
        g_test_add_func("/json/positions", test_positions);
        g_test_add_func("/json/refused", test_refused);
        g_test_add_func("/json/depth", test_depth);
        g_test_add_func("/json/utf8", test_utf8);
        g_test_add_func("/json/base64", test_base64);
        return g_test_run();
}
