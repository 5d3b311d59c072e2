//! Post-data on several connections, as `pg_restore -j` schedules it: index builds and
//! constraints on different tables run at once; everything else runs alone, in order.
//!
//! The statements come in the dump's order, which already respects every dependency. A run of
//! consecutive index and constraint statements becomes one [`Step::Group`], split into lanes:
//! each index build alone (builds on one table do not block each other), keys by the tables
//! they lock (keys sharing a table, directly or through a foreign key, stay in one lane, in
//! order). The lanes run on the restore's connections. Any other statement is a barrier: it
//! waits for the group before it and runs alone. `SET` statements run on every connection.

use std::collections::{HashMap, VecDeque};

use tokio_postgres::Client;

use super::select::{TableSelection, Verdict, parallel_tables};
use crate::error::{Error, Result};

/// A statement and the line it starts on.
pub type Statement = (String, usize);

/// One step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A session setting: on every connection.
    Session(Statement),
    /// Runs alone, after everything before it.
    Alone(Statement),
    /// Lanes that run side by side; each lane's statements in order.
    Group(Vec<Vec<Statement>>),
}

/// Schedules `statements` (pure; pinned by tests).
pub fn schedule(statements: Vec<Statement>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut group: Vec<(Statement, Vec<(String, String)>)> = Vec::new();
    for st in statements {
        let upper = st.0.trim_start().get(..4).unwrap_or_default().to_ascii_uppercase();
        let session =
            upper == "SET " || st.0.to_ascii_lowercase().starts_with("select pg_catalog.set_config(");
        match parallel_tables(&st.0) {
            Some(tables) if !session => group.push((st, tables)),
            _ => {
                close(&mut group, &mut steps);
                steps.push(if session { Step::Session(st) } else { Step::Alone(st) });
            }
        }
    }
    close(&mut group, &mut steps);
    steps
}

/// Ends the group being built: lanes from the tables' connected components.
fn close(group: &mut Vec<(Statement, Vec<(String, String)>)>, steps: &mut Vec<Step>) {
    if group.is_empty() {
        return;
    }
    // Union-find over the statements, joined where they share a table.
    let n = group.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<&(String, String), usize> = HashMap::new();
    for (i, (st, tables)) in group.iter().enumerate() {
        // An index build takes a SHARE lock, which other builds on its table do not conflict
        // with, and nothing in the group needs it: a lane of its own. Keys (ACCESS EXCLUSIVE,
        // and a foreign key needs the referenced key before it) stay together by table.
        if is_index_build(&st.0) {
            continue;
        }
        for t in tables {
            if let Some(&j) = owner.get(t) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            } else {
                owner.insert(t, i);
            }
        }
    }
    let mut lanes: Vec<Vec<Statement>> = Vec::new();
    let mut lane_of: HashMap<usize, usize> = HashMap::new();
    let roots: Vec<usize> = (0..n).map(|i| root(&mut parent, i)).collect();
    for ((st, _), r) in group.drain(..).zip(roots) {
        let lane = *lane_of.entry(r).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(st);
    }
    // The longest lanes first, so that the last one to start is short.
    lanes.sort_by_key(|l| std::cmp::Reverse(l.len()));
    steps.push(Step::Group(lanes));
}

/// Whether to run `sql` under `--tables`: a foreign key to rows that were not restored is left
/// out, and said in `skipped`.
pub fn keep(selection: Option<&TableSelection>, sql: &str, skipped: &mut Vec<String>) -> bool {
    match selection.map_or(Verdict::Keep, |s| s.judge(sql)) {
        Verdict::SkipForeignKey { constraint, table, references } => {
            tracing::warn!(%constraint, %table, %references, "foreign key left out: its rows were not restored");
            skipped.push(format!(
                "{constraint} on {table}: references {references}, whose rows were not restored"
            ));
            false
        }
        _ => true,
    }
}

/// A lane of statements and the tables whose rows must be loaded before it starts.
pub type EarlyLane = (Vec<Statement>, Vec<(String, String)>);

/// What can start while the data still loads: the session settings at the head of `steps` and,
/// when a group follows them, its lanes with the tables each needs loaded first. The group is
/// taken out of `steps`; the settings stay (they also run on the main connection later).
pub fn take_early(steps: &mut Vec<Step>) -> (Vec<String>, Vec<EarlyLane>) {
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
    let Step::Group(lanes) = steps.remove(at) else { unreachable!("matched above") };
    let lanes = lanes
        .into_iter()
        .map(|lane| {
            let mut tables: Vec<(String, String)> =
                lane.iter().flat_map(|(sql, _)| parallel_tables(sql).unwrap_or_default()).collect();
            tables.sort();
            tables.dedup();
            (lane, tables)
        })
        .collect();
    (sessions, lanes)
}

fn is_index_build(sql: &str) -> bool {
    sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("create"))
}

/// Runs `steps` on `clients` (the first one runs what runs alone): settings on every one, a
/// group's lanes on as many as it has lanes.
pub async fn run(
    clients: &[&Client],
    steps: Vec<Step>,
    selection: Option<&TableSelection>,
    sql_err: &(impl Fn(usize, tokio_postgres::Error) -> Error + Sync),
) -> Result<(u64, Vec<String>)> {
    let main = clients[0];
    let (mut done, mut skipped) = (0u64, Vec::new());
    let mut keep = |sql: &str| keep(selection, sql, &mut skipped);
    for step in steps {
        match step {
            Step::Session((sql, line)) => {
                for c in clients {
                    c.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                }
                done += 1;
            }
            Step::Alone((sql, line)) => {
                if keep(&sql) {
                    main.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                    done += 1;
                }
            }
            Step::Group(lanes) => {
                let lanes: VecDeque<Vec<Statement>> = lanes
                    .into_iter()
                    .map(|l| l.into_iter().filter(|(sql, _)| keep(sql)).collect::<Vec<_>>())
                    .filter(|l| !l.is_empty())
                    .collect();
                done += lanes.iter().map(|l| l.len() as u64).sum::<u64>();
                let used = clients.len().min(lanes.len());
                let queue = std::sync::Mutex::new(lanes);
                let runners = clients[..used].iter().map(|client| {
                    let queue = &queue;
                    async move {
                        loop {
                            let Some(lane) = queue.lock().expect("queue lock").pop_front() else { break };
                            for (sql, line) in lane {
                                client.batch_execute(&sql).await.map_err(|e| sql_err(line, e))?;
                            }
                        }
                        Ok::<_, Error>(())
                    }
                });
                futures_util::future::try_join_all(runners).await?;
            }
        }
    }
    Ok((done, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(sql: &str) -> Statement {
        (sql.to_owned(), 1)
    }

    fn sqls(lane: &[Statement]) -> Vec<&str> {
        lane.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn index_and_key_statements_on_different_tables_share_a_group_and_others_are_barriers() {
        let steps = schedule(vec![
            st("SET statement_timeout = 0;"),
            st("SELECT pg_catalog.set_config('search_path', '', false);"),
            st("ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            st("ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_pkey PRIMARY KEY (id);"),
            st("CREATE INDEX a_x ON public.a USING btree (x);"),
            st("CREATE UNIQUE INDEX \"C.i\" ON ONLY \"S\".\"c\" USING btree (y);"),
            st("ALTER INDEX public.p_idx ATTACH PARTITION public.c_idx;"),
            st("ALTER TABLE ONLY public.b\n    ADD CONSTRAINT b_a FOREIGN KEY (a) REFERENCES public.a(id);"),
            st("ALTER TABLE ONLY public.d\n    ADD CONSTRAINT d_e FOREIGN KEY (e) REFERENCES public.e(id);"),
            st("CREATE TRIGGER t AFTER INSERT ON public.a FOR EACH ROW EXECUTE FUNCTION public.f();"),
        ]);
        assert!(matches!(&steps[0], Step::Session(_)) && matches!(&steps[1], Step::Session(_)));
        let Step::Group(lanes) = &steps[2] else { panic!("{:?}", steps[2]) };
        // every key and every index build a lane of its own (no table shared between keys)
        assert_eq!(lanes.len(), 4);
        assert!(lanes.iter().all(|l| l.len() == 1));
        assert!(sqls(&lanes[2])[0].starts_with("CREATE INDEX a_x"), "{lanes:?}");
        assert!(matches!(&steps[3], Step::Alone((s, _)) if s.starts_with("ALTER INDEX")));
        // foreign keys on disjoint tables: two lanes
        let Step::Group(fks) = &steps[4] else { panic!("{:?}", steps[4]) };
        assert_eq!(fks.len(), 2);
        assert!(matches!(&steps[5], Step::Alone((s, _)) if s.starts_with("CREATE TRIGGER")));
        assert_eq!(steps.len(), 6);
    }

    #[test]
    fn statements_joined_through_foreign_keys_share_one_lane_in_order() {
        let steps = schedule(vec![
            st("ALTER TABLE ONLY public.a ADD CONSTRAINT a_b FOREIGN KEY (b) REFERENCES public.b(id);"),
            st("ALTER TABLE ONLY public.c ADD CONSTRAINT c_d FOREIGN KEY (d) REFERENCES public.d(id);"),
            st("ALTER TABLE ONLY public.b ADD CONSTRAINT b_c FOREIGN KEY (c) REFERENCES public.c(id);"),
            st("ALTER TABLE ONLY public.x ADD CONSTRAINT x_check CHECK (v > 0) NOT VALID;"),
        ]);
        let [Step::Group(lanes)] = &steps[..] else { panic!("{steps:?}") };
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes[0].iter().map(|(s, _)| &s[41..44]).collect::<Vec<_>>(), vec!["a_b", "c_d", "b_c"]);
        assert!(lanes[1][0].0.contains("x_check"));
    }

    #[test]
    fn the_first_group_starts_early_with_the_tables_each_lane_needs() {
        let mut steps = schedule(vec![
            st("SET lock_timeout = 0;"),
            st("ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);"),
            st("ALTER TABLE ONLY public.b ADD CONSTRAINT b_a FOREIGN KEY (a) REFERENCES public.a(id);"),
            st("CREATE INDEX c_x ON public.c USING btree (x);"),
            st("CREATE VIEW public.v AS SELECT 1;"),
        ]);
        let (sessions, lanes) = take_early(&mut steps);
        assert_eq!(sessions, vec!["SET lock_timeout = 0;"]);
        let tables = |l: &EarlyLane| l.1.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
        assert_eq!(lanes.len(), 2);
        assert_eq!((lanes[0].0.len(), tables(&lanes[0])), (2, vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(tables(&lanes[1]), vec!["c".to_owned()]);
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
