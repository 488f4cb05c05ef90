//! Draws the model of `tabbyctl top` with ratatui: a header (the daemon and
//! the connection), the sessions table, the routes pane and a key hint.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Padding, Paragraph, Row, Table};
use tabby_proto::v1 as pb;

use super::model::{ChangeKind, Link, Session, Top};
use crate::render;

/// The sessions table's columns.
const COLUMNS: [&str; 11] = [
    "PEER",
    "AS",
    "TYPE",
    "STATE",
    "UPTIME",
    "RCVD",
    "ACPT",
    "ADV",
    "UPD IN/s",
    "UPD OUT/s",
    "BFD",
];

/// Where STATE is (drawn in the session's colour).
const STATE_COLUMN: usize = 3;

/// Columns whose numbers are right-aligned.
const NUMERIC: [bool; 11] = [
    false, true, false, false, true, true, true, true, true, true, false,
];

/// The routes summary's width, left of the last changes.
const SUMMARY_WIDTH: u16 = 32;

/// "-" before a rate is known, one decimal below 10/s, whole numbers above.
pub fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) => format!("{r:.0}"),
    }
}

/// Draws everything into the frame.
pub fn draw(frame: &mut Frame, top: &Top, now: Instant) {
    let area = frame.area();
    let sessions = top.sessions().count() as u16;
    // The sessions table takes what it needs, the routes pane keeps at
    // least six lines.
    let room = area.height.saturating_sub(4 + 1 + 6).max(3);
    let [header, table, routes, footer] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(sessions.saturating_add(3).min(room)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, top);
    draw_sessions(frame, table, top, now);
    draw_routes(frame, routes, top, now);
    frame.render_widget(
        Paragraph::new(format!(
            " q quit · polled every {}s",
            top.interval().as_secs_f64()
        ))
        .style(Style::new().add_modifier(Modifier::DIM)),
        footer,
    );
}

/// A bordered pane with a title and a space inside each side.
fn pane<'a>(title: impl Into<Line<'a>>) -> Block<'a> {
    Block::bordered()
        .title(title)
        .padding(Padding::horizontal(1))
}

fn draw_header(frame: &mut Frame, area: Rect, top: &Top) {
    let title = match top.node() {
        Some(n) => format!(" tabbyctl top · node {n} "),
        None => " tabbyctl top ".to_string(),
    };
    let link = match top.link() {
        Link::Up => Span::styled("connected", Style::new().fg(Color::Green)),
        Link::Connecting => Span::styled("connecting", Style::new().fg(Color::Yellow)),
        Link::Down(why) => Span::styled(
            format!("DISCONNECTED ({why}); retrying"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    let lines = match top.status() {
        Some(st) => vec![
            Line::from(vec![
                link,
                Span::raw(format!(
                    " · tabbyd {} · router id {} · AS {} · up {}",
                    st.version,
                    st.router_id,
                    st.local_as,
                    render::duration(st.uptime_seconds)
                )),
            ]),
            Line::raw(format!(
                "peers {} configured, {} established · datastore {} · fib {} · graceful restart {}",
                st.peers_configured,
                st.peers_established,
                render::datastore_name(st.datastore_sync),
                render::fib_name(st.fib_sync),
                render::gr_name(st.graceful_restart),
            )),
        ],
        None => vec![Line::from(vec![
            link,
            Span::raw(" · waiting for tabbyd's status"),
        ])],
    };
    frame.render_widget(Paragraph::new(lines).block(pane(title)), area);
}

fn state_style(p: &pb::Peer) -> Style {
    if !p.enabled {
        Style::new().add_modifier(Modifier::DIM)
    } else if p.state == pb::SessionState::Established as i32 {
        Style::new().fg(Color::Green)
    } else {
        Style::new().fg(Color::Yellow)
    }
}

/// One session's cells, in `COLUMNS` order.
pub fn session_cells(s: &Session, now: Instant) -> [String; 11] {
    let p = &s.peer;
    let c = p.config.clone().unwrap_or_default();
    let n = p.counters.unwrap_or_default();
    let state = if p.enabled {
        render::state_name(p.state).to_string()
    } else {
        "disabled".into()
    };
    let uptime = match s.uptime(now) {
        0 => "-".into(),
        u => render::duration(u),
    };
    [
        render::peer_name(p),
        c.remote_as.to_string(),
        render::peer_type_name(c.r#type).into(),
        state,
        uptime,
        n.prefixes_received.to_string(),
        n.prefixes_accepted.to_string(),
        n.prefixes_advertised.to_string(),
        rate(s.updates_in.per_second()),
        rate(s.updates_out.per_second()),
        p.bfd
            .as_ref()
            .map_or("-", |b| render::bfd_phase_name(b.phase))
            .into(),
    ]
}

fn draw_sessions(frame: &mut Frame, area: Rect, top: &Top, now: Instant) {
    let rows: Vec<([String; 11], Style)> = top
        .sessions()
        .map(|s| (session_cells(s, now), state_style(&s.peer)))
        .collect();
    let established = top
        .sessions()
        .filter(|s| s.peer.state == pb::SessionState::Established as i32)
        .count();
    let mut widths = COLUMNS.map(|h| h.len() as u16);
    for (cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count() as u16);
        }
    }
    let cell = |i: usize, text: String| {
        let line = Line::raw(text);
        Cell::from(if NUMERIC[i] {
            line.right_aligned()
        } else {
            line
        })
    };
    let header = Row::new(
        COLUMNS
            .iter()
            .enumerate()
            .map(|(i, h)| cell(i, h.to_string())),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let body = rows.into_iter().map(|(cells, style)| {
        let mut cells: Vec<Cell> = cells
            .into_iter()
            .enumerate()
            .map(|(i, t)| cell(i, t))
            .collect();
        cells[STATE_COLUMN] = cells[STATE_COLUMN].clone().style(style);
        Row::new(cells)
    });
    let title = format!(
        " Sessions: {} configured, {established} established ",
        top.sessions().count()
    );
    // Two spaces between columns when they fit, else one, before ratatui
    // has to cut cells.
    let needed: u16 = widths.iter().sum::<u16>() + 2 * (widths.len() as u16 - 1);
    let spacing = if needed <= area.width.saturating_sub(4) {
        2
    } else {
        1
    };
    let table = Table::new(body, widths.map(Constraint::Length))
        .header(header)
        .column_spacing(spacing)
        .block(pane(title));
    frame.render_widget(table, area);
}

fn draw_routes(frame: &mut Frame, area: Rect, top: &Top, now: Instant) {
    let [summary, changes] =
        Layout::horizontal([Constraint::Length(SUMMARY_WIDTH), Constraint::Min(0)]).areas(area);
    let (v4, v6) = top.best_routes();
    let mut lines = vec![
        Line::raw(format!("IPv4 best routes {v4:>11}")),
        Line::raw(format!("IPv6 best routes {v6:>11}")),
        Line::raw(format!("changes/s {:>18}", rate(top.route_change_rate()))),
        Line::raw(format!("changes seen {:>15}", top.route_changes())),
    ];
    if !top.routes_synced() {
        lines.push(Line::styled(
            "(reading the Loc-RIB)",
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(pane(" Routes ")), summary);
    let shown = usize::from(changes.height.saturating_sub(2));
    let lines: Vec<Line> = top
        .recent_changes()
        .take(shown)
        .map(|c| {
            let age = render::duration(now.saturating_duration_since(c.at).as_secs());
            match &c.kind {
                ChangeKind::Best { next_hop, source } => Line::raw(format!(
                    "{age:>6} ago  + {} via {next_hop} from {source}",
                    c.prefix
                )),
                ChangeKind::Withdrawn => Line::styled(
                    format!("{age:>6} ago  - {} withdrawn", c.prefix),
                    Style::new().fg(Color::Red),
                ),
            }
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(pane(" Last route changes ")),
        changes,
    );
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
