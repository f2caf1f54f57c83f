/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/* A program that crashes (SIGSEGV in libcrashlib) and has Crashpad's
 * crashpad_handler dump it, the way Crashpad's "start handler at crash"
 * mode does: the signal handler allows the handler to ptrace us, forks, and
 * execs `crashpad_handler <argv[1:]> --trace-parent-with-exception=<addr>`,
 * where <addr> points at {siginfo*, ucontext*, thread id}. */

#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void lib_entry(volatile int *where);
int noid_value(int x);

struct exception_information {
    uint64_t siginfo_address;
    uint64_t context_address;
    int32_t thread_id;
};

static struct exception_information exception_info;
static char trace_argument[64];
static char *handler_argv[64];

static void on_crash(int signo, siginfo_t *siginfo, void *context) {
    exception_info.siginfo_address = (uint64_t)(uintptr_t)siginfo;
    exception_info.context_address = (uint64_t)(uintptr_t)context;
    exception_info.thread_id = (int32_t)syscall(SYS_gettid);
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    pid_t child = fork();
    if (child == 0) {
        execv(handler_argv[0], handler_argv);
        _exit(127);
    }
    if (child > 0) {
        int status;
        waitpid(child, &status, 0);
    }
    signal(signo, SIG_DFL);
    raise(signo);
}

__attribute__((noinline)) static void do_work(volatile int *where) {
    lib_entry(where);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv) {
    int n = 0;
    for (int i = 1; i < argc && n < 60; i++) handler_argv[n++] = argv[i];
    snprintf(trace_argument, sizeof trace_argument, "--trace-parent-with-exception=0x%llx",
             (unsigned long long)(uintptr_t)&exception_info);
    handler_argv[n++] = trace_argument;
    handler_argv[n] = NULL;

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_crash;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, NULL);

    if (noid_value(argc) == 0) return 1;
    do_work((volatile int *)0);
    return 0;
}
