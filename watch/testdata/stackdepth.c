// stackdepth: a watch test target with stacks of known depths.
//
//   stackdepth HOLD_MS EXIT threads KIB...      one pthread per KIB: it recurses
//       through volatile 1 KiB frames until KIB KiB below its start are in use,
//       then blocks in read(2) on a pipe nobody writes.
//   stackdepth HOLD_MS EXIT fibers N SIZE KIB   N mmap(MAP_NORESERVE|MAP_STACK)
//       stacks of SIZE bytes, lowest page PROT_NONE (as the seed's fibers), the
//       top KIB KiB of each written from the top down.
//
// When everything is in place it prints one line per stack, "thread TID SP0
// SPD" (hex SPs at the thread's start and at its deepest frame) or "fiber
// BASE SIZE", then "ready", then sleeps HOLD_MS ms and exits with EXIT.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int arrived;

struct job {
  long kib;
  pid_t tid;
  uintptr_t sp0, spd;
};

static void deepest(struct job* j) {
  volatile char here;
  j->spd = (uintptr_t)&here;
  pthread_mutex_lock(&mu);
  arrived++;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  char c;
  for (;;) read(pipefd[0], &c, 1);  // blocks forever: nobody writes
}

static void recurse(struct job* j, uintptr_t until) {
  volatile char frame[1024];
  memset((char*)frame, 1, sizeof frame);
  if ((uintptr_t)frame > until)
    recurse(j, until);
  else
    deepest(j);
  frame[0] = 2;  // keeps the frame live across the call
}

static void* run(void* arg) {
  struct job* j = arg;
  volatile char here;
  j->tid = gettid();
  j->sp0 = (uintptr_t)&here;
  recurse(j, j->sp0 - (uintptr_t)j->kib * 1024);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 4) return 64;
  long hold = atol(argv[1]);
  int code = atoi(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[3], "threads") == 0) {
    int n = argc - 4;
    struct job* jobs = calloc(n, sizeof *jobs);
    if (pipe(pipefd) < 0) return 70;
    for (int i = 0; i < n; i++) {
      jobs[i].kib = atol(argv[4 + i]);
      pthread_attr_t a;
      pthread_attr_init(&a);
      pthread_attr_setstacksize(&a, 8 << 20);
      pthread_t t;
      if (pthread_create(&t, &a, run, &jobs[i])) return 71;
    }
    pthread_mutex_lock(&mu);
    while (arrived < n) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
      printf("thread %d %lx %lx\n", (int)jobs[i].tid, (unsigned long)jobs[i].sp0, (unsigned long)jobs[i].spd);
  } else if (strcmp(argv[3], "fibers") == 0 && argc == 7) {
    long n = atol(argv[4]), size = atol(argv[5]), kib = atol(argv[6]);
    long page = sysconf(_SC_PAGESIZE);
    for (long i = 0; i < n; i++) {
      char* m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
      if (m == MAP_FAILED) return 72;
      if (mprotect(m, page, PROT_NONE) < 0) return 73;
      for (long off = 1; off <= kib * 1024; off += page) m[size - off] = 1;
      if (n <= 64) printf("fiber %lx %lx\n", (unsigned long)m, (unsigned long)size);
    }
  } else {
    return 64;
  }
  printf("ready\n");
  struct timespec ts = {hold / 1000, (hold % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0) {
  }
  return code;
}
