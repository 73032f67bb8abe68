/* SPDX-License-Identifier: MIT */
#pragma once

/* Intrusive doubly-linked lists with a head that knows its first and last item, so that append
 * and removal are O(1). A zero-initialised head is an empty list; a zero-initialised item is
 * unlinked. Items are linked through fields declared with LIST_FIELDS(type, name). */

#define LIST_HEAD(t)                            \
        struct {                                \
                t *first;                       \
                t *last;                        \
        }

#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

#define LIST_IS_EMPTY(head) ((head).first == NULL)

#define LIST_APPEND(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(item)) *_i_ = (item);                      \
                _i_->name##_next = NULL;                                \
                _i_->name##_prev = (head).last;                         \
                if ((head).last)                                        \
                        (head).last->name##_next = _i_;                 \
                else                                                    \
                        (head).first = _i_;                             \
                (head).last = _i_;                                      \
        } while (0)

#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(item)) *_i_ = (item);                      \
                if (_i_->name##_next)                                   \
                        _i_->name##_next->name##_prev = _i_->name##_prev; \
                else                                                    \
                        (head).last = _i_->name##_prev;                 \
                if (_i_->name##_prev)                                   \
                        _i_->name##_prev->name##_next = _i_->name##_next; \
                else                                                    \
                        (head).first = _i_->name##_next;                \
                _i_->name##_next = _i_->name##_prev = NULL;             \
        } while (0)

#define LIST_FOREACH(name, i, head) for ((i) = (head).first; (i); (i) = (i)->name##_next)
