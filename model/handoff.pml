/*
 * handoff.pml: the swap protocol of DESIGN sections 2 and 3, as implemented
 * (incumbent_swap.go, successor.go, supervisor/supervisor_session.go,
 * supervisor/supervisor_commit.go, supervisor/adopt.go, supervisor/restart.go),
 * with crashes of every role. model/README.md explains the abstraction;
 * scripts/model.sh runs the checks.
 *
 * Processes: S1 the supervisor that runs one swap, O the incumbent, N the
 * successor, S2 the supervisor restarted after S1 dies, R a daemon that a
 * supervisor cold-starts when the incumbent it watches is gone, and Killer,
 * which crashes any live process at any step, at most MAXCRASH times.
 *
 * Every assertion carries its property tag (INV1, ...) on its own line: the
 * script names a violated property from the line of the failed assertion.
 *
 * Switches that remove one load-bearing ordering of DESIGN section 3 each
 * (scripts/model.sh --mutants checks that each produces a counterexample):
 *   BREAK_SEAL_BEFORE_UNLOCK    O releases the lock before it seals
 *   BREAK_ANSWER_AFTER_SEAL     O answers reads after it sealed
 *   BREAK_JOURNAL_BEFORE_COMMIT S journals Committed after sending Commit
 *   BREAK_BIND_BEFORE_WRITE     N serves before it binds the control path
 *   BREAK_FLOCK_RECHECK         O resumes on flock without re-checking the path
 *   BREAK_TIMER                 O gives up waiting for a held lock and exits
 *   BREAK_ORPHAN_KILL           a restarted S adopts without killing orphans
 *   BREAK_WRITE_BEFORE_COMMIT   N acknowledges writes between Ready and Commit
 *                               (bold in DESIGN section 2, guards INV5)
 * Other switches:
 *   NO_INV2_CHECK       drop the INV2 assertion (to see what a mutant leads to)
 *   CHECK_SUPERVISION   also check that the live supervisor watches the one
 *                       serving incumbent, and never binds new listeners
 *                       while a daemon holds the old ones (see README)
 *   FIX_SUPERVISOR      the supervisor's recovery as implemented (adopt.go
 *                       findIncumbent, restart.go replaceCrashed); without
 *                       it the model shows the gaps the code once had
 */

#ifndef MAXCRASH
#define MAXCRASH 1
#endif
#ifndef MAXW
#define MAXW 2          /* acknowledged writes, over all processes */
#endif

/* process identities (index into the arrays below) */
#define NONE 0
#define PO   1          /* incumbent (old binary) */
#define PN   2          /* successor (new binary) */
#define PR   3          /* cold-(re)started daemon */
#define PS1  4          /* supervisor */
#define PS2  5          /* restarted supervisor */
#define NPROC 6

#define OLD 0
#define NEW 1

mtype = { PREPARE, DRAINED, SEALREQ, SEALOK, SEALFAIL, COMMIT, RESUME,   /* S <-> O */
          HELLO, BEGIN, READY, ABORT };                                 /* S <-> N */
mtype = { J_IDLE, J_NEGOTIATING, J_DRAINING, J_SEALING, J_AWAITING_READY,
          J_COMMITTED, J_ABORTING, J_RESUMING };                        /* journal phase */

chan so  = [2] of { mtype };    /* S1 -> O, control connection */
chan os_ = [2] of { mtype };    /* O -> S1 */
chan sn  = [2] of { mtype };    /* S1 -> N, socketpair */
chan ns  = [1] of { mtype };    /* N -> S1 */

bool alive[NPROC];
bool killed[NPROC];     /* SIGKILL pending (a crash, or S stopping N) */
bool ctl[NPROC];        /* p listens on the control socket it bound */
bool srv[NPROC];        /* p serves: accepts connections, answers writes */
bool rd[NPROC];         /* p answers reads (on connections already open) */
byte mem[NPROC];        /* writes contained in the state p answers from */

byte lock = PO;         /* the data-dir flock holder (the kernel's view) */
byte path = PO;         /* whose socket file the control path names */
byte cur  = PO;         /* the incumbent the live supervisor watches */
byte acked;             /* acknowledged writes (each one fsynced first) */
bool new_acked;         /* the new binary has acknowledged a write */
byte crashes;

mtype journal = J_IDLE;
bool j_succ;            /* the journal names the successor */

bool o_sealed;          /* O: Seal succeeded and O has not resumed */
bool o_closed;          /* O closed its control session with S1 */
bool s_closed;          /* S1 closed its connections (swap over) */
bool prepared;          /* S1 sent PrepareHandoff */
bool n_commit;          /* N received Commit */
bool s2_ls;             /* S2 holds listening sockets */
bit  r_bin;             /* binary R runs */
bool r_go;              /* R is starting or running */

#define BIN(p)      ((p) == PN -> NEW : ((p) == PR -> r_bin : OLD))
#define ANSWERS(p)  (ctl[p] && path == (p))
#define TIMEOUT     true            /* a deadline may fire at any time */

/* EOF and send-failure conditions of the two connections of S1 */
#define S1_OPEN     (alive[PS1] && !s_closed)    /* O can send to S1 */
#define O_EOF       (!S1_OPEN && len(so) == 0)
#define O_OPEN      (alive[PO] && !o_closed)     /* S1 can send to O */
#define O_GONE      (!O_OPEN && len(os_) == 0)
#define N_GONE      (!alive[PN] && len(ns) == 0)
#define N_EOF       (!alive[PS1] && len(sn) == 0)

/* INV4: some process still holds the listening sockets. */
#define HOLDERS     (alive[PS1] || (alive[PS2] && s2_ls) || alive[PO] || alive[PN] || alive[PR])

inline flush(c) {
  do
  :: nempty(c) -> c?_
  :: empty(c) -> break
  od
}

/* p exits or is killed: the kernel releases its flock and closes its sockets. */
inline die(p) {
  atomic {
    alive[p] = false; ctl[p] = false; srv[p] = false; rd[p] = false;
    if
    :: lock == p -> lock = NONE
    :: else
    fi;
    if
    :: p == PO -> flush(so)
    :: p == PN -> flush(sn)
    :: p == PS1 -> flush(os_); flush(ns)
    :: else
    fi;
    assert(crashes > 1 || HOLDERS);                            /* INV4 */
  }
}

/* a client write acknowledged by p (fsync, then ack) */
inline write(p) {
  atomic {
    acked < MAXW ->
    assert(p != PN || (lock == PN && n_commit));               /* INV5 */
    assert(lock == p);                                         /* INV1 */
    assert(mem[p] == acked);                                   /* INV3 */
    mem[p]++; acked++;
    if
    :: BIN(p) == NEW -> new_acked = true
    :: else
    fi
  }
}


inline release_o() {
  atomic {
#ifndef NO_INV2_CHECK
    assert(o_sealed);                                          /* INV2 */
#endif
    lock = NONE
  }
}

inline close_o_session() {
  atomic { o_closed = true; flush(so) }
}

/*
 * The supervisor's watch loop (Run/restart): when the incumbent it watches
 * is gone, cold-start the binary of that generation (startLocked) and wait
 * until it answers on the control path or exits.
 */
inline run_loop() {
  skip;
end_run:
  do
  :: !alive[cur] && !r_go ->
#ifdef FIX_SUPERVISOR
     if
     :: ctl[path] && path != cur -> cur = path; goto end_run   /* adopt who answers */
     :: else
     fi;
#endif
     atomic { r_bin = BIN(cur); alive[PR] = true; r_go = true };
     if
     :: ctl[PR] -> cur = PR
     :: !r_go
     fi
  od
}

/* ---------------------------------------------------------------- O */
proctype Incumbent() {
  {
    skip;
o_serve:
    atomic { srv[PO] = true; rd[PO] = true };
end_o_serve:
    do
    :: write(PO)
    :: so?PREPARE -> break
    od;
    /* Drain: stop accepting, reject writes; reads on open conns go on */
    srv[PO] = false;
    if
    :: S1_OPEN -> os_!DRAINED
    :: else -> goto o_resume
    fi;
    do
    :: so?SEALREQ -> break
    :: so?RESUME -> goto o_resume
    :: O_EOF -> goto o_resume
    :: TIMEOUT -> goto o_resume                 /* its own deadline */
    od;
    /* Seal: close the remaining connections, answer nothing more */
#ifndef BREAK_ANSWER_AFTER_SEAL
    rd[PO] = false;
#endif
#ifdef BREAK_SEAL_BEFORE_UNLOCK
    release_o();
#endif
    if
    :: skip
    :: atomic { mem[PO] = acked; srv[PO] = true; rd[PO] = true };  /* Seal failed: resume, */
       if                                       /* then report SealFailed */
       :: S1_OPEN -> os_!SEALFAIL
       :: else
       fi;
       close_o_session();
       goto o_serve
    fi;
    o_sealed = true;
#ifndef BREAK_SEAL_BEFORE_UNLOCK
    release_o();
#endif
    if
    :: S1_OPEN -> os_!SEALOK
    :: else -> goto o_recover
    fi;
    /* awaitCommit */
    do
    :: so?COMMIT -> goto o_exit
    :: so?RESUME -> break
    :: O_EOF -> break
    :: TIMEOUT -> break
    od;
o_recover:      /* recoverSealed: lock retried without an upper bound */
    do
    :: path != PO -> goto o_exit                /* taken over: a commit */
    :: atomic { lock == NONE -> lock = PO }; break
#ifdef BREAK_TIMER
    :: lock != NONE -> goto o_exit              /* held too long: gives up */
#endif
    od;
#ifndef BREAK_FLOCK_RECHECK
    if                                          /* flock, then re-check */
    :: path != PO -> lock = NONE; goto o_exit
    :: else
    fi;
#endif
    o_sealed = false;
o_resume:       /* ResumeAfterAbort: reopen from the data directory */
    mem[PO] = acked;
    close_o_session();
    goto o_serve;
o_exit:
    skip        /* Serve returned nil: the daemon exits */
  } unless { killed[PO] };
  die(PO)
}

/* ---------------------------------------------------------------- N */
proctype Successor() {
end_unspawned:
  alive[PN];
  {
    if                                          /* Hello, after warm-up */
    :: alive[PS1] -> ns!HELLO
    :: else -> goto n_exit
    fi;
    if                                          /* WaitForBegin */
    :: sn?BEGIN
    :: sn?ABORT -> goto n_exit
    :: N_EOF -> goto n_exit
    fi;
    if                                          /* AcquireLock (LOCK_NB) */
    :: atomic { lock == NONE -> lock = PN }
    :: else -> goto n_exit
    fi;
    if                                          /* open the sealed state */
    :: skip
    :: true; end_hang: false                    /* never becomes ready */
    fi;
    mem[PN] = acked;
    if
    :: alive[PS1] -> ns!READY
    :: else -> goto n_exit
    fi;
#ifndef BREAK_WRITE_BEFORE_COMMIT
    if                                          /* AnnounceAndBind */
    :: sn?COMMIT -> n_commit = true
    :: sn?ABORT -> goto n_exit
    :: N_EOF -> goto n_exit
    fi;
#else
    atomic { srv[PN] = true; rd[PN] = true };   /* serves before Commit */
    do
    :: write(PN)
    :: sn?COMMIT -> n_commit = true; break
    :: sn?ABORT -> goto n_exit
    :: N_EOF -> goto n_exit
    od;
#endif
#ifndef BREAK_BIND_BEFORE_WRITE
    atomic { path = PN; ctl[PN] = true };       /* bind tmp, rename: the commit mark */
    atomic { srv[PN] = true; rd[PN] = true };
end_n_serve:
    do
    :: write(PN)
    od;
#else
    atomic { srv[PN] = true; rd[PN] = true };
end_n_serve:
    do
    :: write(PN)
    :: !ctl[PN] -> atomic { path = PN; ctl[PN] = true }
    od;
#endif
n_exit:
    skip        /* ErrAborted: exit without having written */
  } unless { killed[PN] };
  die(PN)
}

/* ---------------------------------------------------------------- R */
proctype Restarted() {
end_idle:
  do
  :: r_go ->
     {
       mem[PR] = 0;
       /* AcquireOrBreakStale, then BindColdStart's checkNotLive. A failed
        * attempt is one step: see "restart back-off" in the README. */
       if
       :: atomic { lock == NONE && !ctl[path] -> lock = PR }
       :: else -> goto r_fail
       fi;
       atomic { path = PR; ctl[PR] = true };
       mem[PR] = acked;                         /* open the store */
       atomic { srv[PR] = true; rd[PR] = true };
end_r_serve:
       do
       :: write(PR)
       od;
r_fail:
       skip
     } unless { killed[PR] };
     die(PR);
     atomic { killed[PR] = false; r_go = false }
  od
}

/* ---------------------------------------------------------------- S1 */
proctype Supervisor() {
  {
    journal = J_NEGOTIATING;
    if                                          /* connectIncumbent */
    :: ANSWERS(PO) -> skip
    :: else -> goto s_abort
    fi;
    alive[PN] = true;                           /* spawnSuccessor */
    j_succ = true;                              /* journal names it */
    if                                          /* successorHello */
    :: ns?HELLO
    :: N_GONE -> goto s_abort
    :: TIMEOUT -> goto s_abort
    fi;
    journal = J_DRAINING;                       /* drain */
    if
    :: O_OPEN -> so!PREPARE; prepared = true
    :: else -> goto s_abort
    fi;
    if
    :: os_?DRAINED
    :: O_GONE -> goto s_abort
    :: TIMEOUT -> goto s_abort
    fi;
    journal = J_SEALING;                        /* seal */
    if
    :: O_OPEN -> so!SEALREQ
    :: else -> goto s_abort
    fi;
    if
    :: os_?SEALOK
    :: os_?SEALFAIL -> goto s_abort
    :: O_GONE -> goto s_abort
    :: TIMEOUT -> goto s_abort
    fi;
    journal = J_AWAITING_READY;                 /* begin */
    if
    :: alive[PN] -> sn!BEGIN
    :: else -> goto s_abort
    fi;
    if
    :: ns?READY
    :: N_GONE -> goto s_abort
    :: TIMEOUT -> goto s_abort
    fi;
    if                                          /* checkReady, probe */
    :: skip
    :: goto s_abort
    fi;
#ifndef BREAK_JOURNAL_BEFORE_COMMIT             /* commit */
    journal = J_COMMITTED;
#endif
    if
    :: alive[PN] -> sn!COMMIT
    :: else -> goto s_abort
    fi;
#ifdef BREAK_JOURNAL_BEFORE_COMMIT
    journal = J_COMMITTED;
#endif
    if                                          /* best effort */
    :: O_OPEN -> so!COMMIT
    :: else
    fi;
    atomic { s_closed = true; flush(os_); cur = PN };   /* promote */
    if                                          /* confirmServing */
    :: ANSWERS(PN)
    :: !alive[PN]
    :: TIMEOUT
    fi;
    journal = J_IDLE;
    goto s_run;
s_abort:
    journal = J_ABORTING;
    if                                          /* stopSuccessor */
    :: alive[PN] ->
       sn!ABORT;                                /* best effort */
       killed[PN] = true;
       !alive[PN]                               /* reaped */
    :: else
    fi;
    journal = J_RESUMING;
    if                                          /* resumeIncumbent */
    :: prepared && O_OPEN -> so!RESUME
    :: else
    fi;
    atomic { s_closed = true; flush(os_) };
    journal = J_IDLE;
s_run:
    run_loop()
  } unless { killed[PS1] };
  die(PS1)
}

/* ---------------------------------------------------------------- S2 */
proctype Restart() {
  byte who;
end_standby:
  !alive[PS1];
  alive[PS2] = true;
  {
    skip;
s2_top:
    /* removeOrphan */
    if
    :: j_succ && journal != J_IDLE && journal != J_COMMITTED ->
#ifndef BREAK_ORPHAN_KILL
       if
       :: alive[PN] ->                          /* pidfd opened */
          if
          :: ANSWERS(PN) -> skip                /* it owns the control path */
          :: else -> killed[PN] = true; !alive[PN]
          fi
       :: else                                  /* already gone */
       fi
#else
       skip
#endif
    :: else
    fi;
#ifdef FIX_SUPERVISOR
    /* ground truth is the lock holder with the path owner: while the
     * holder does not answer on the path (a committed successor that has
     * not bound it yet, an uncommitted one about to exit), wait */
    (lock == NONE || ANSWERS(lock));
#endif
    if                                          /* controlPeerPID */
    :: ctl[path] -> who = path
    :: else -> who = NONE
    fi;
    if
    :: who == NONE ->                           /* cold start, new sockets */
#ifdef CHECK_SUPERVISION
       assert(!(alive[PO] || alive[PN] || alive[PR]));          /* SUP1 */
#endif
       atomic { s2_ls = true; cur = NONE }
    :: else ->
       if                                       /* adopt: fetchListeners */
       :: ANSWERS(who) -> atomic { s2_ls = true; cur = who }
       :: else -> goto s2_top
       fi
    fi;
    run_loop()
  } unless { killed[PS2] };
  die(PS2)
}

/* ---------------------------------------------------------------- state invariants */
/* INV3 (reads): a process answers reads only from a state holding every
 * acknowledged write. INV7 (binary): once the new binary acknowledged a
 * write, no process of the old binary answers anything (one crash). */
#define SERVES(p)   (srv[p] && lock == (p) && path == (p))
#define ONE_SERVES  ((srv[PO] + srv[PN] + srv[PR]) == 1 && (SERVES(PO) || SERVES(PN) || SERVES(PR)))
#define SUPERVISED  (ONE_SERVES && srv[cur] && (alive[PS1] || (alive[PS2] && s2_ls)))
#define READS_OK(p) (!rd[p] || mem[p] == acked)
#define BIN_OK(p)   (!rd[p] || BIN(p) == NEW || !new_acked)
proctype Monitor() {
end_watch:
  if
  :: !(READS_OK(PO) && READS_OK(PN) && READS_OK(PR)) -> assert(false)        /* INV3 */
  :: crashes <= 1 && !(BIN_OK(PO) && BIN_OK(PN) && BIN_OK(PR)) -> assert(false) /* INV7 */
  :: timeout -> assert(crashes > 1 || ONE_SERVES)                            /* LIVE */
#ifdef CHECK_SUPERVISION
  :: timeout -> assert(crashes > 1 || SUPERVISED)                            /* SUP2 */
#endif
  fi
}

/* ---------------------------------------------------------------- faults */
proctype Killer() {
  do
  :: atomic {
       crashes < MAXCRASH ->
       if
       :: alive[PS1] && !killed[PS1] -> killed[PS1] = true
       :: alive[PS2] && !killed[PS2] -> killed[PS2] = true
       :: alive[PO] && !killed[PO] -> killed[PO] = true
       :: alive[PN] && !killed[PN] -> killed[PN] = true
       :: alive[PR] && !killed[PR] -> killed[PR] = true
       fi;
       crashes++
     }
  :: break
  od
}

init {
  atomic {
    alive[PO] = true; ctl[PO] = true; alive[PS1] = true;
    run Killer();
    run Incumbent();
    run Successor();
    run Restarted();
    run Supervisor();
    run Restart();
    run Monitor()
  }
}

/* INV7 and the liveness property: exactly one incumbent serves, holding the
 * lock and owning the control path. */
ltl converge { <>[] ONE_SERVES }
#ifdef CHECK_SUPERVISION
ltl supervised { <>[] SUPERVISED }
#endif
