/*
 * notify_stub.c: fusefs/notify.c's interface for in-process tests.
 */
#ifndef NOTIFY_STUB_H
#define NOTIFY_STUB_H

/* 1: segments are followed and the segment directory watched (names may
 * be cached); 0: as when notify.c could not start its threads. */
extern int fz_notify_on;

#endif
