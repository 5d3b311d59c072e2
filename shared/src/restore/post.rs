//! Post-data on several connections, as `pg_restore -j` schedules it: index builds and
//! constraints run at once as their dependencies and locks allow; everything else runs alone,
//! in order.
//!
//! The statements come in the dump's order, which already respects every dependency. A run of
//! consecutive index and constraint statements becomes one [`Step::Group`]: a graph of
//! [`Task`]s in which a task waits for every earlier one that locks a table it locks (index
//! builds on one table take SHARE locks and do not wait for each other). A foreign key is
//! added `NOT VALID` (brief) and validated as a task of its own, which locks only the
//! referencing table against other work (the referenced one with ROW SHARE, which index builds
//! and other validations do not conflict with): two keys referencing one table are checked side
//! by side, where `ADD FOREIGN KEY` would check them one after the other. The result is the same
//! valid constraint.
//!
//! A group runs on the restore's connections through a [`Phase`], which also holds the data
//! parts while they load: a task starts once its tables' rows are in, and the ready task on the
//! longest chain of work (weighted by its tables' data) goes first. Any other statement is a
//! barrier: it waits for the group before it and runs alone. `SET` statements run on every
//! connection.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_postgres::Client;

use super::apply::{ApplyStats, Batch};
use super::select::{parallel_tables, split_foreign_key};
use crate::error::{Error, Result};

/// A statement and the line it starts on.
pub type Statement = (String, usize);

/// A table as `(schema, name)`.
pub type TableName = (String, String);

/// One statement of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub sql: String,
    pub line: usize,
    /// The tables it locks against other work; their rows must be in before it starts.
    pub tables: Vec<TableName>,
    /// Earlier tasks of the group that must finish first.
    pub after: Vec<usize>,
}

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A session setting: on every connection.
    Session(Statement),
    /// Runs alone, after everything before it.
    Alone(Statement),
    /// Tasks that run side by side as their `after` allows.
    Group(Vec<Task>),
}

/// Schedules `statements` (pure; pinned by tests).
pub fn schedule(statements: Vec<Statement>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut group: Vec<Task> = Vec::new();
    for (sql, line) in statements {
        let upper = sql.trim_start().get(..4).unwrap_or_default().to_ascii_uppercase();
        let session =
            upper == "SET " || sql.to_ascii_lowercase().starts_with("select pg_catalog.set_config(");
        match parallel_tables(&sql) {
            Some(tables) if !session => match split_foreign_key(&sql) {
                Some((add, validate)) => {
                    let referencing = vec![tables[0].clone()];
                    push_task(&mut group, add, line, tables);
                    push_task(&mut group, validate, line, referencing);
                }
                None => push_task(&mut group, sql, line, tables),
            },
            _ => {
                if !group.is_empty() {
                    steps.push(Step::Group(std::mem::take(&mut group)));
                }
                steps.push(if session { Step::Session((sql, line)) } else { Step::Alone((sql, line)) });
            }
        }
    }
    if !group.is_empty() {
        steps.push(Step::Group(group));
    }
    steps
}

/// Adds a task after every earlier one sharing a table with it, but for two index builds:
/// their SHARE locks do not conflict and neither needs the other.
fn push_task(group: &mut Vec<Task>, sql: String, line: usize, tables: Vec<TableName>) {
    let build = is_index_build(&sql);
    let after = group
        .iter()
        .enumerate()
        .filter(|(_, t)| !(build && is_index_build(&t.sql)) && t.tables.iter().any(|x| tables.contains(x)))
        .map(|(i, _)| i)
        .collect();
    group.push(Task { sql, line, tables, after });
}

/// A statement on one line, cut at 120 characters, for logs.
fn brief(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(120).collect()
}

fn is_index_build(sql: &str) -> bool {
    sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("create"))
}

/// What can start while the data still loads: the session settings at the head of `steps` and
/// the group after them, taken out of `steps` (the settings stay: they run on every connection
/// again later).
pub fn take_early(steps: &mut Vec<Step>) -> (Vec<String>, Vec<Task>) {
    let sessions: Vec<String> = steps
        .iter()
        .map_while(|s| match s {
            Step::Session((sql, _)) => Some(sql.clone()),
            _ => None,
        })
        .collect();
    let at = sessions.len();
    if !matches!(steps.get(at), Some(Step::Group(_))) {
        return (sessions, Vec::new());
    }
    let Step::Group(tasks) = steps.remove(at) else { unreachable!("matched above") };
    (sessions, tasks)
}

/// A group's tasks as they run: what each still waits for, and how much work hangs on it.
#[derive(Debug)]
struct Graph {
    tasks: Vec<Task>,
    waiting: Vec<usize>,
    then: Vec<Vec<usize>>,
    /// The task's weight plus the heaviest chain after it: the ready task with the largest
    /// goes first, so that long chains (a big table's key, then the keys that need it) start
    /// early and the last task to start is a short one.
    rank: Vec<u64>,
    started: Vec<bool>,
    left: usize,
}

impl Graph {
    fn new(tasks: Vec<Task>, weight: &HashMap<TableName, u64>) -> Self {
        let n = tasks.len();
        let mut then = vec![Vec::new(); n];
        for (i, t) in tasks.iter().enumerate() {
            for &j in &t.after {
                then[j].push(i);
            }
        }
        let mut rank = vec![0u64; n];
        for i in (0..n).rev() {
            let own = 1 + tasks[i].tables.first().and_then(|t| weight.get(t)).copied().unwrap_or(0);
            rank[i] = own + then[i].iter().map(|&k| rank[k]).max().unwrap_or(0);
        }
        Graph {
            waiting: tasks.iter().map(|t| t.after.len()).collect(),
            then,
            rank,
            started: vec![false; n],
            left: n,
            tasks,
        }
    }

    /// The ready task (nothing to wait for, its tables loaded) with the largest rank.
    fn pick(&mut self, loaded: impl Fn(&TableName) -> bool) -> Option<usize> {
        let best = (0..self.tasks.len())
            .filter(|&i| !self.started[i] && self.waiting[i] == 0 && self.tasks[i].tables.iter().all(&loaded))
            .max_by_key(|&i| (self.rank[i], std::cmp::Reverse(i)))?;
        self.started[best] = true;
        Some(best)
    }

    fn finished(&mut self, i: usize) {
        self.left -= 1;
        for &k in &self.then[i] {
            self.waiting[k] -= 1;
        }
    }
}

/// Work for a connection.
pub enum Work<P> {
    /// A data part, with the table it loads.
    Part(P, Option<TableName>),
    /// A task of the group: its index, statement and line.
    Task(usize, String, usize),
    /// Everything left waits for work other connections are doing.
    Wait,
}

/// The data parts still to load and a group's tasks, shared by the connections.
pub struct Phase<P> {
    parts: VecDeque<(P, Option<TableName>)>,
    /// Parts per table not yet loaded, and being loaded now.
    loading: HashMap<TableName, usize>,
    active: HashMap<TableName, usize>,
    graph: Graph,
}

impl<P> Phase<P> {
    /// `parts` with their tables, `tasks` of one group; `weight`: each table's data in bytes.
    pub fn new(
        parts: Vec<(P, Option<TableName>)>,
        tasks: Vec<Task>,
        weight: &HashMap<TableName, u64>,
    ) -> Self {
        let mut loading = HashMap::new();
        for t in parts.iter().filter_map(|(_, t)| t.clone()) {
            *loading.entry(t).or_insert(0) += 1;
        }
        Phase { parts: parts.into(), loading, active: HashMap::new(), graph: Graph::new(tasks, weight) }
    }

    /// The next work: a part of a table no other connection is loading (two COPYs into one
    /// table contend for its extension lock), else a ready task, else any part. `None`:
    /// nothing is left.
    pub fn next(&mut self) -> Option<Work<P>> {
        let free =
            self.parts.iter().position(|(_, t)| t.as_ref().is_none_or(|t| !self.active.contains_key(t)));
        let part = match free {
            Some(i) => self.parts.remove(i),
            None => match self.ready_task() {
                Some(task) => return Some(task),
                None => self.parts.pop_front(),
            },
        };
        if let Some((p, t)) = part {
            if let Some(t) = &t {
                *self.active.entry(t.clone()).or_insert(0) += 1;
            }
            return Some(Work::Part(p, t));
        }
        match self.ready_task() {
            Some(task) => Some(task),
            None if self.graph.left == 0 => None,
            None => Some(Work::Wait),
        }
    }

    fn ready_task(&mut self) -> Option<Work<P>> {
        let loading = &self.loading;
        let i = self.graph.pick(|t| loading.get(t).copied().unwrap_or(0) == 0)?;
        let task = &self.graph.tasks[i];
        Some(Work::Task(i, task.sql.clone(), task.line))
    }

    /// A part of `table` has loaded.
    pub fn loaded(&mut self, table: &TableName) {
        for counts in [&mut self.loading, &mut self.active] {
            if let Some(n) = counts.get_mut(table) {
                *n -= 1;
            }
        }
        self.active.retain(|_, n| *n > 0);
    }

    /// Task `i` has run.
    pub fn finished(&mut self, i: usize) {
        self.graph.finished(i);
    }
}

/// Runs `phase` on `clients`: each takes the next work until none is left, waiting (without
/// polling) while what is left waits for the others. `load` replays a part; the first error
/// stops every connection.
pub async fn drive<'c, P, F, Fut>(
    clients: &[&'c Client],
    phase: Phase<P>,
    load: F,
    sql_err: &(impl Fn(usize, tokio_postgres::Error) -> Error + Sync),
) -> Result<ApplyStats>
where
    F: Fn(&'c Client, P) -> Fut,
    Fut: Future<Output = Result<ApplyStats>>,
{
    let (phase, changed) = (Mutex::new(phase), Notify::new());
    let runners = clients.iter().map(|client| {
        let (client, phase, changed, load) = (*client, &phase, &changed, &load);
        async move {
            let mut stats = ApplyStats::default();
            loop {
                // Registered before looking, so that a change in between is not missed.
                let notified = changed.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                let work = phase.lock().expect("phase lock").next();
                match work {
                    None => break,
                    Some(Work::Wait) => notified.await,
                    Some(Work::Part(p, table)) => {
                        stats.add(&load(client, p).await?);
                        if let Some(t) = table {
                            phase.lock().expect("phase lock").loaded(&t);
                        }
                        changed.notify_waiters();
                    }
                    Some(Work::Task(i, sql, line)) => {
                        let started = std::time::Instant::now();
                        client.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                        tracing::debug!(line, ms = started.elapsed().as_millis() as u64, sql = %brief(&sql), "post-data task");
                        stats.statements += 1;
                        phase.lock().expect("phase lock").finished(i);
                        changed.notify_waiters();
                    }
                }
            }
            Ok::<_, Error>(stats)
        }
    });
    let mut total = ApplyStats::default();
    for stats in futures_util::future::try_join_all(runners).await? {
        total.add(&stats);
    }
    Ok(total)
}

/// Runs `steps` on `clients` (the first one runs what runs alone): settings on every one, a
/// group's tasks on all of them. Returns the statements run.
pub async fn run(
    clients: &[&Client],
    steps: Vec<Step>,
    weight: &HashMap<TableName, u64>,
    sql_err: &(impl Fn(usize, tokio_postgres::Error) -> Error + Sync),
) -> Result<u64> {
    let main = clients[0];
    let mut done = 0u64;
    // Statements that run alone, one after another, go in batches (comments, triggers, grants:
    // short, and many).
    let mut alone = Batch::new(true);
    for step in steps {
        if !matches!(step, Step::Alone(_)) {
            done += alone.flush(main, sql_err).await?;
        }
        match step {
            Step::Session((sql, line)) => {
                for c in clients {
                    c.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                }
                done += 1;
            }
            Step::Alone((sql, line)) => done += alone.push(main, sql, line, sql_err).await?,
            Step::Group(tasks) => {
                let phase = Phase::<()>::new(Vec::new(), tasks, weight);
                let no_parts = |_, _: ()| async { Ok(ApplyStats::default()) };
                done += drive(clients, phase, no_parts, sql_err).await?.statements;
            }
        }
    }
    Ok(done + alone.flush(main, sql_err).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(sql: &str) -> Statement {
        (sql.to_owned(), 1)
    }

    fn t(name: &str) -> TableName {
        ("public".to_owned(), name.to_owned())
    }

    /// The order in which one connection would run a group's tasks (no parts).
    fn order(tasks: Vec<Task>, weight: &[(&str, u64)]) -> Vec<String> {
        let weight = weight.iter().map(|(n, w)| (t(n), *w)).collect();
        let mut phase = Phase::<()>::new(Vec::new(), tasks, &weight);
        let mut out = Vec::new();
        while let Some(Work::Task(i, sql, _)) = phase.next() {
            out.push(sql);
            phase.finished(i);
        }
        assert!(phase.next().is_none(), "every task ran");
        out
    }

    #[test]
    fn index_and_key_statements_share_a_group_and_others_are_barriers() {
        let steps = schedule(vec![
            st("SET statement_timeout = 0;"),
            st("SELECT pg_catalog.set_config('search_path', '', false);"),
            st("ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            st("ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_pkey PRIMARY KEY (id);"),
            st("CREATE INDEX a_x ON public.a USING btree (x);"),
            st("CREATE INDEX a_y ON public.a USING btree (y);"),
            st("CREATE UNIQUE INDEX \"C.i\" ON ONLY \"S\".\"c\" USING btree (y);"),
            st("ALTER INDEX public.p_idx ATTACH PARTITION public.c_idx;"),
            st("ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_a FOREIGN KEY (a) REFERENCES public.a(id);"),
            st("CREATE TRIGGER t AFTER INSERT ON public.a FOR EACH ROW EXECUTE FUNCTION public.f();"),
        ]);
        assert!(matches!(&steps[0], Step::Session(_)) && matches!(&steps[1], Step::Session(_)));
        let Step::Group(tasks) = &steps[2] else { panic!("{:?}", steps[2]) };
        let after: Vec<&[usize]> = tasks.iter().map(|t| t.after.as_slice()).collect();
        // the keys wait for nothing, a's builds for a's key only (not for each other)
        assert_eq!(after, vec![&[][..], &[], &[0], &[0], &[]]);
        assert!(matches!(&steps[3], Step::Alone((s, _)) if s.starts_with("ALTER INDEX")));
        // a foreign key: added NOT VALID, then validated
        let Step::Group(fk) = &steps[4] else { panic!("{:?}", steps[4]) };
        assert_eq!(fk.len(), 2);
        assert!(fk[0].sql.ends_with("REFERENCES public.a(id) NOT VALID;"), "{}", fk[0].sql);
        assert_eq!(fk[1].sql, "ALTER TABLE ONLY \"public\".\"b\" VALIDATE CONSTRAINT \"b_a\";");
        assert_eq!((fk[1].tables.clone(), fk[1].after.clone()), (vec![t("b")], vec![0]));
        assert!(matches!(&steps[5], Step::Alone((s, _)) if s.starts_with("CREATE TRIGGER")));
        assert_eq!(steps.len(), 6);
    }

    #[test]
    fn two_foreign_keys_to_one_table_are_added_in_turn_and_validated_side_by_side() {
        let steps = schedule(vec![
            st("ALTER TABLE ONLY public.users ADD CONSTRAINT users_pkey PRIMARY KEY (id);"),
            st("ALTER TABLE ONLY public.n ADD CONSTRAINT n_u FOREIGN KEY (u) REFERENCES public.users(id);"),
            st("ALTER TABLE ONLY public.e ADD CONSTRAINT e_u FOREIGN KEY (u) REFERENCES public.users(id);"),
        ]);
        let [Step::Group(tasks)] = &steps[..] else { panic!("{steps:?}") };
        let after: Vec<&[usize]> = tasks.iter().map(|t| t.after.as_slice()).collect();
        // add n_u after the key; validate n_u after its add; add e_u after the key and n_u's
        // add, not after n_u's validation; validate e_u after its add
        assert_eq!(after, vec![&[][..], &[0], &[1], &[0, 1], &[3]]);
        // as pg_dump writes it already NOT VALID, or on a partitioned table (no ONLY): one task
        let steps = schedule(vec![
            st(
                "ALTER TABLE ONLY public.n ADD CONSTRAINT n_u FOREIGN KEY (u) REFERENCES public.users(id) NOT VALID;",
            ),
            st("ALTER TABLE public.p ADD CONSTRAINT p_u FOREIGN KEY (u) REFERENCES public.users(id);"),
        ]);
        let [Step::Group(tasks)] = &steps[..] else { panic!("{steps:?}") };
        assert_eq!(tasks.len(), 2);
        assert!(tasks.iter().all(|t| !t.sql.contains("VALIDATE")));
    }

    #[test]
    fn the_ready_task_on_the_heaviest_chain_goes_first() {
        let steps = schedule(vec![
            st("ALTER TABLE ONLY public.small ADD CONSTRAINT small_pkey PRIMARY KEY (id);"),
            st("ALTER TABLE ONLY public.big ADD CONSTRAINT big_pkey PRIMARY KEY (id);"),
            st("CREATE INDEX big_x ON public.big USING btree (x);"),
            st("CREATE INDEX small_x ON public.small USING btree (x);"),
        ]);
        let [Step::Group(tasks)] = &steps[..] else { panic!("{steps:?}") };
        let ran = order(tasks.clone(), &[("big", 1000), ("small", 10)]);
        let names: Vec<&str> = ran
            .iter()
            .filter_map(|s| s.split_whitespace().skip_while(|w| !["CONSTRAINT", "INDEX"].contains(w)).nth(1))
            .collect();
        assert_eq!(names, vec!["big_pkey", "big_x", "small_pkey", "small_x"]);
    }

    #[test]
    fn tasks_wait_for_their_tables_rows_and_parts_of_a_busy_table_come_last() {
        let steps = schedule(vec![
            st("ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            st("CREATE INDEX c_x ON public.c USING btree (x);"),
        ]);
        let [Step::Group(tasks)] = &steps[..] else { panic!("{steps:?}") };
        let parts = vec![("a1", Some(t("a"))), ("a2", Some(t("a"))), ("c1", Some(t("c")))];
        let mut phase = Phase::new(parts, tasks.clone(), &HashMap::new());
        assert!(matches!(phase.next(), Some(Work::Part("a1", _))));
        // a is being loaded: another connection takes c's part before a's second one
        assert!(matches!(phase.next(), Some(Work::Part("c1", _))));
        assert!(matches!(phase.next(), Some(Work::Part("a2", _))));
        assert!(matches!(phase.next(), Some(Work::Wait)));
        phase.loaded(&t("c"));
        let Some(Work::Task(i, sql, _)) = phase.next() else { panic!("c's index is ready") };
        assert!(sql.starts_with("CREATE INDEX c_x"));
        phase.finished(i);
        phase.loaded(&t("a"));
        assert!(matches!(phase.next(), Some(Work::Wait)), "a has a part loading still");
        phase.loaded(&t("a"));
        let Some(Work::Task(i, _, _)) = phase.next() else { panic!("a's key is ready") };
        phase.finished(i);
        assert!(phase.next().is_none());
    }

    #[test]
    fn the_first_group_starts_early() {
        let mut steps = schedule(vec![
            st("SET lock_timeout = 0;"),
            st("ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            st("CREATE INDEX c_x ON public.c USING btree (x);"),
            st("CREATE VIEW public.v AS SELECT 1;"),
        ]);
        let (sessions, tasks) = take_early(&mut steps);
        assert_eq!(sessions, vec!["SET lock_timeout = 0;"]);
        assert_eq!(tasks.len(), 2);
        assert_eq!(steps.len(), 2, "the settings stay, the view follows: {steps:?}");
    }

    #[test]
    fn anything_else_is_alone() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON public.a (x);",
            "ALTER TABLE public.a CLUSTER ON i;",
            "ALTER TABLE ONLY public.a ALTER COLUMN x SET STATISTICS 5;",
            "REFRESH MATERIALIZED VIEW public.m;",
            "COMMENT ON INDEX public.i IS 'x';",
        ] {
            assert!(matches!(&schedule(vec![st(sql)])[..], [Step::Alone(_)]), "{sql}");
        }
    }
}
