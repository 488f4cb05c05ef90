//! `tabbyctl top`: a live view of the daemon's sessions and routes.
//!
//! `model` folds what the feeds bring into the state shown (pure, tested
//! with made-up instants), `view` draws it with ratatui, `feed` keeps the
//! connections, and this file is the event loop: keys, resizes, redraws,
//! and a terminal given back as it was on every way out.

mod feed;
mod model;
mod view;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use crate::client::{ApiTarget, TlsFiles, connect};
use model::Top;

/// How often the screen is redrawn when something changed; ages and
/// uptimes are redrawn every second regardless.
const FRAME: Duration = Duration::from_millis(200);
/// At most this many messages are folded between two looks at the keys, so
/// a large snapshot does not make `q` wait.
const BATCH: usize = 20_000;

/// What the terminal tells the loop.
#[derive(Debug)]
enum Input {
    Quit,
    Redraw,
    Failed(String),
}

/// Checks `--interval`: seconds, 0.1 to 3600.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds, e.g. 2 or 0.5"))?;
    if !(0.1..=3600.0).contains(&secs) {
        return Err(format!("{s} is out of range: 0.1 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs `tabbyctl top` until the operator quits.
pub async fn run(target: &ApiTarget, tls: &TlsFiles, interval: Duration) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "tabbyctl top draws on a terminal and stdout is not one; \
             for scripts use `tabbyctl watch peers|routes` or `tabbyctl -o json status`"
        );
    }
    // Reach the daemon once before taking the screen: a wrong --api is one
    // line of error, not a screen saying "disconnected".
    connect(target, tls).await?;

    let (tx, mut rx) = mpsc::channel(4096);
    let _feeds = feed::spawn(
        feed::Api {
            target: target.clone(),
            tls: tls.clone(),
        },
        interval,
        tx,
    );
    let mut screen = Screen::enter()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut input = read_input(Arc::clone(&stop));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch for SIGHUP")?;

    let mut top = Top::new(interval);
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut drawn = Instant::now();
    let outcome = loop {
        tokio::select! {
            Some(msg) = rx.recv() => {
                let now = Instant::now();
                top.apply(now, msg);
                for _ in 0..BATCH {
                    match rx.try_recv() {
                        Ok(m) => top.apply(now, m),
                        Err(_) => break,
                    }
                }
                dirty = true;
                continue;
            }
            i = input.recv() => match i {
                Some(Input::Quit) | None => break Ok(()),
                Some(Input::Redraw) => dirty = true,
                Some(Input::Failed(e)) => break Err(anyhow::anyhow!("reading the terminal: {e}")),
            },
            _ = frame.tick() => {}
            _ = term.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
        }
        let now = Instant::now();
        top.tick(now);
        if dirty || now.duration_since(drawn) >= Duration::from_secs(1) {
            if let Err(e) = screen.draw(&top, now) {
                break Err(e);
            }
            dirty = false;
            drawn = now;
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(screen);
    outcome
}

/// The terminal in raw mode on the alternate screen; given back on drop.
/// (A panic gives it back too: ratatui's init installs a hook for it.)
struct Screen(DefaultTerminal);

impl Screen {
    fn enter() -> Result<Screen> {
        match ratatui::try_init() {
            Ok(t) => Ok(Screen(t)),
            Err(e) => {
                ratatui::restore();
                Err(e).context("cannot take over the terminal")
            }
        }
    }

    fn draw(&mut self, top: &Top, now: Instant) -> Result<()> {
        self.0
            .draw(|f| view::draw(f, top, now))
            .context("drawing on the terminal")?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.0.show_cursor();
        ratatui::restore();
    }
}

/// Reads keys and resizes on a thread of its own (crossterm reads block);
/// it stops when `stop` is set or the loop stops listening.
fn read_input(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let input = match event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => match k.code {
                        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Input::Quit,
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            Input::Quit
                        }
                        _ => continue,
                    },
                    Ok(Event::Resize(..)) => Input::Redraw,
                    Ok(_) => continue,
                    Err(e) => Input::Failed(e.to_string()),
                },
                Err(e) => Input::Failed(e.to_string()),
            };
            let last = matches!(input, Input::Quit | Input::Failed(_));
            if tx.send(input).is_err() || last {
                return;
            }
        }
    });
    rx
}
