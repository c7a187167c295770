//! The warm path allocates nothing: a checkout of an idle socket and its
//! return cost a lock, a hash lookup and the liveness check, no heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keepalive::{FromCache, Manager, Target};

/// Counts allocations made on the thread that armed it.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; the only
// addition is a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && COUNT_HERE.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test(flavor = "current_thread")]
async fn warm_allocate_and_drop_do_not_allocate() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let manager = Manager::new();
    let target = Target::new("http", "127.0.0.1", listener.local_addr().unwrap().port());
    let _server_side = {
        let conn = manager.allocate(target.clone());
        let (accepted, conn) = tokio::join!(listener.accept(), conn);
        drop(conn.unwrap());
        accepted.unwrap()
    };
    // One warm cycle first: the socket's waker is built on its first return.
    drop(manager.allocate(target.clone()).await.unwrap());

    COUNT_HERE.with(|c| c.set(true));
    ARMED.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        let conn = manager.allocate(target.clone()).await.unwrap();
        assert_eq!(conn.from_cache(), FromCache::Immediate);
        drop(conn);
    }
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "heap allocations on the warm path"
    );
    assert_eq!(manager.stats().reuses, 1001);
}
