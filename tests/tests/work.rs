//! Work end to end, on SQLite and PostgreSQL: the seeds' curl examples as written (projects,
//! tasks, subtasks, dependencies, status, notes), a three-node cycle refused with its path, two
//! concurrent requests racing to close a cycle (never both), a blocked completion refused and
//! then allowed, If-Match, cursor pagination over 500 tasks with inserts between pages, another
//! organization's project and task 404 everywhere, the graph's order and ready list after a
//! series of changes, and the `project.*`/`task.*` events a subscriber receives (a project's
//! deletion sends a `task.deleted` for each of its tasks).

use atlas_e2e::receiver::Receiver;
use atlas_e2e::{on_both_backends, Answer, Options, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Generous limits: these tests make hundreds of writes in a few seconds.
fn unlimited() -> Options {
    let mut options = Options::default();
    options.env.insert("ATLAS_RATE_LIMIT_WRITES".into(), "100000/min".into());
    options.env.insert("ATLAS_RATE_LIMIT_READS".into(), "100000/min".into());
    options
}

async fn post(server: &TestServer, path: &str, body: Value) -> Answer {
    server.call(Method::POST, path, Some(&server.admin_key), Some(body)).await
}

async fn get(server: &TestServer, path: &str) -> Answer {
    server.call(Method::GET, path, Some(&server.admin_key), None).await
}

async fn project(server: &TestServer, key: &str) -> String {
    let created = post(server, "/v1/atlas/projects", json!({"key": key, "name": format!("Project {key}")})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.data()["id"].as_str().unwrap().to_owned()
}

async fn task(server: &TestServer, project: &str, title: &str) -> String {
    let created = post(server, &format!("/v1/atlas/projects/{project}/tasks"), json!({"title": title})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.data()["id"].as_str().unwrap().to_owned()
}

async fn depend(server: &TestServer, task: &str, on: &str) -> Answer {
    post(server, &format!("/v1/atlas/tasks/{task}/dependencies"), json!({"dependsOnTaskId": on})).await
}

async fn status(server: &TestServer, task: &str, status: &str) -> Answer {
    server.call(Method::PUT, &format!("/v1/atlas/tasks/{task}/status"), Some(&server.admin_key), Some(json!({"status": status}))).await
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("an array: {v}")).iter().map(|x| x.as_str().unwrap().to_owned()).collect()
}

on_both_backends!(the_seeds_curl_examples_work_as_written, unlimited(), |server| {
    // Seed 004: a project, a task, a subtask, a dependency, a status and a note.
    let created =
        post(&server, "/v1/atlas/projects", json!({"key": "webapp", "name": "Web Application", "description": "Main product frontend"}))
            .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let project = created.data()["id"].as_str().unwrap().to_owned();
    assert!(project.starts_with("prj_"));
    assert_eq!(created.data()["key"], "webapp");
    assert_eq!(created.header("location"), Some(format!("/v1/atlas/projects/{project}").as_str()));
    let by_key = get(&server, "/v1/atlas/projects/webapp").await;
    assert_eq!(by_key.data()["id"], project.as_str(), "a project is found by its key too");
    let duplicate = post(&server, "/v1/atlas/projects", json!({"key": "webapp", "name": "Again"})).await;
    assert_eq!((duplicate.status, duplicate.code()), (StatusCode::CONFLICT, "CONFLICT"), "keys are unique per organization");

    let first = post(
        &server,
        &format!("/v1/atlas/projects/{project}/tasks"),
        json!({
            "title": "Implement user settings page",
            "description": "Create the settings page with profile editing, password change, and notification preferences",
            "priority": "High"
        }),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let t1 = first.data()["id"].as_str().unwrap().to_owned();
    assert_eq!((first.data()["priority"].as_str(), first.data()["status"].as_str()), (Some("high"), Some("todo")));
    assert_eq!(first.data()["version"], 1);

    let sub = post(
        &server,
        &format!("/v1/atlas/projects/{project}/tasks"),
        json!({"title": "Add password change form", "parentTaskId": t1, "priority": "Normal"}),
    )
    .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{:?}", sub.body);
    let t2 = sub.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(sub.data()["parent_task_id"], t1.as_str());
    assert_eq!(sub.data()["priority"], "normal");

    let dependency = depend(&server, &t2, &t1).await;
    assert_eq!(dependency.status, StatusCode::CREATED, "{:?}", dependency.body);
    assert_eq!(dependency.data()["added"], true);
    assert_eq!(dependency.data()["depends_on_task_id"], t1.as_str());
    let again = depend(&server, &t2, &t1).await;
    assert_eq!((again.status, &again.data()["added"]), (StatusCode::OK, &json!(false)), "a duplicate is a no-op");

    let moved = status(&server, &t1, "InProgress").await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.data()["status"], "in_progress");

    let note =
        post(&server, &format!("/v1/atlas/tasks/{t1}/notes"), json!({"content": "Decided to use React Hook Form + Zod for validation"}))
            .await;
    assert_eq!(note.status, StatusCode::CREATED, "{:?}", note.body);
    let notes = get(&server, &format!("/v1/atlas/tasks/{t1}/notes")).await;
    assert_eq!(notes.data()["notes"][0]["content"], "Decided to use React Hook Form + Zod for validation");

    let subtasks = get(&server, &format!("/v1/atlas/tasks/{t1}/subtasks")).await;
    assert_eq!(subtasks.status, StatusCode::OK);
    assert_eq!(subtasks.data()["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(subtasks.data()["tasks"][0]["id"], t2.as_str());
    let deps = get(&server, &format!("/v1/atlas/tasks/{t2}/dependencies")).await;
    assert_eq!(deps.data()["dependencies"][0]["depends_on_task_id"], t1.as_str());
    assert_eq!(deps.data()["dependencies"][0]["blocking"], true);

    // Seed 003: a top-level create with projectId, "HIGH" and dueOn, under an idempotency key.
    let body = json!({"projectId": project, "title": "Review Q3 forecast", "priority": "HIGH", "dueOn": "2026-05-01T17:00:00Z"});
    let created = server
        .send(Method::POST, "/v1/atlas/tasks", Some(&server.admin_key), Some(body.clone()), &[("Idempotency-Key", "seed-003-1")])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.data()["priority"], "high");
    assert_eq!(created.data()["due_on"], "2026-05-01T17:00:00Z");
    assert_eq!(created.data()["project_id"], project.as_str());
    let replay =
        server.send(Method::POST, "/v1/atlas/tasks", Some(&server.admin_key), Some(body), &[("Idempotency-Key", "seed-003-1")]).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.data()["id"], created.data()["id"], "the replay returns the original task");
    let listed = get(&server, "/v1/atlas/tasks?limit=50").await;
    assert_eq!(listed.data()["tasks"].as_array().unwrap().len(), 3, "the replay created nothing");

    let bad = post(&server, "/v1/atlas/tasks", json!({"projectId": project, "title": "x", "priority": "EXTREME"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["details"]["fields"][0]["field"], "priority");
    let runs = get(&server, "/v1/atlas/runs?operation=tasks.dependencies.add").await;
    assert_eq!(runs.data()["runs"].as_array().unwrap().len(), 2, "every mutation writes a run");
});

on_both_backends!(a_three_node_cycle_is_refused_with_its_path, unlimited(), |server| {
    let p = project(&server, "cyc").await;
    let q = project(&server, "other").await;
    let (a, b, c) = (task(&server, &p, "a").await, task(&server, &p, "b").await, task(&server, &q, "c").await);
    assert_eq!(depend(&server, &b, &a).await.status, StatusCode::CREATED);
    assert_eq!(depend(&server, &c, &b).await.status, StatusCode::CREATED);
    let refused = depend(&server, &a, &c).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "CYCLE_DETECTED"), "{:?}", refused.body);
    assert_eq!(
        strings(&refused.body["error"]["details"]["cycle"]),
        vec![a.clone(), c.clone(), b.clone(), a.clone()],
        "a → c → b → a, across projects"
    );
    let own = depend(&server, &a, &a).await;
    assert_eq!(strings(&own.body["error"]["details"]["cycle"]), vec![a.clone(), a.clone()], "a self-dependency is a cycle");
    let deps = get(&server, &format!("/v1/atlas/tasks/{a}/dependencies")).await;
    assert!(deps.data()["dependencies"].as_array().unwrap().is_empty(), "nothing was added");
});

on_both_backends!(two_requests_racing_to_close_a_cycle_never_both_commit, unlimited(), |server| {
    let p = project(&server, "race").await;
    for trial in 0..25 {
        let (a, b) = (task(&server, &p, &format!("a{trial}")).await, task(&server, &p, &format!("b{trial}")).await);
        let (one, two) = tokio::join!(depend(&server, &a, &b), depend(&server, &b, &a));
        let statuses = [one.status, two.status];
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
            1,
            "trial {trial}: exactly one of a→b, b→a commits: {:?} / {:?}",
            one.body,
            two.body
        );
        assert!(statuses.contains(&StatusCode::UNPROCESSABLE_ENTITY), "the other is refused: {statuses:?}");
    }
});

on_both_backends!(a_blocked_completion_is_refused_then_allowed_once_the_blocker_is_done, unlimited(), |server| {
    let p = project(&server, "blk").await;
    let (blocker, blocked) = (task(&server, &p, "blocker").await, task(&server, &p, "blocked").await);
    depend(&server, &blocked, &blocker).await;
    let refused = status(&server, &blocked, "done").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "TASK_BLOCKED"), "{:?}", refused.body);
    assert_eq!(strings(&refused.body["error"]["details"]["blocked_by"]), vec![blocker.clone()]);
    let shown = get(&server, &format!("/v1/atlas/tasks/{blocked}")).await;
    assert_eq!(strings(&shown.data()["blocked_by"]), vec![blocker.clone()]);
    assert_eq!(status(&server, &blocker, "DONE").await.status, StatusCode::OK);
    let done = status(&server, &blocked, "done").await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert!(done.data()["completed_at"].is_string());
    // A deleted task stops blocking.
    let (x, y) = (task(&server, &p, "x").await, task(&server, &p, "y").await);
    depend(&server, &y, &x).await;
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/tasks/{x}"), Some(&server.admin_key), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(get(&server, &format!("/v1/atlas/tasks/{x}")).await.status, StatusCode::NOT_FOUND, "a deleted task is hidden");
    assert_eq!(status(&server, &y, "done").await.status, StatusCode::OK, "a deleted task blocks nobody");
});

on_both_backends!(if_match_refuses_a_stale_version, unlimited(), |server| {
    let p = project(&server, "ver").await;
    let t = task(&server, &p, "t").await;
    let read = get(&server, &format!("/v1/atlas/tasks/{t}")).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    let patch = |if_match: Option<&'static str>, title: &'static str| {
        let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("If-Match", v)]).unwrap_or_default();
        let path = format!("/v1/atlas/tasks/{t}");
        let server = &server;
        async move { server.send(Method::PATCH, &path, Some(&server.admin_key), Some(json!({"title": title})), &headers).await }
    };
    let first = patch(Some("\"1\""), "renamed").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.header("etag"), Some("\"2\""));
    let stale = patch(Some("\"1\""), "lost update").await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "VERSION_CONFLICT"));
    let unconditional = patch(None, "applies").await;
    assert_eq!(unconditional.status, StatusCode::OK);
    assert_eq!(unconditional.data()["version"], 3);
    let project_stale = server
        .send(
            Method::PATCH,
            &format!("/v1/atlas/projects/{p}"),
            Some(&server.admin_key),
            Some(json!({"name": "n"})),
            &[("If-Match", "\"9\"")],
        )
        .await;
    assert_eq!(project_stale.code(), "VERSION_CONFLICT");
    let stale_status = server
        .send(
            Method::PUT,
            &format!("/v1/atlas/tasks/{t}/status"),
            Some(&server.admin_key),
            Some(json!({"status": "in_progress"})),
            &[("If-Match", "2")],
        )
        .await;
    assert_eq!(stale_status.code(), "VERSION_CONFLICT");
});

on_both_backends!(cursor_pagination_over_500_tasks_survives_inserts_between_pages, unlimited(), |server| {
    let p = project(&server, "many").await;
    let mut created = Vec::new();
    for i in 0..500 {
        created.push(task(&server, &p, &format!("task {i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/atlas/projects/{p}/tasks?limit=60&cursor={c}"),
            None => format!("/v1/atlas/projects/{p}/tasks?limit=60"),
        };
        let page = get(&server, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(strings(&page.data()["tasks"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect::<Value>()));
        task(&server, &p, "inserted between pages").await;
        pages += 1;
        match page.data()["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(pages, 9);
    assert_eq!(seen, created, "every task once, newest first, none of those inserted meanwhile");
});

on_both_backends!(another_organizations_project_and_task_are_404_everywhere, unlimited(), |server| {
    let p = project(&server, "mine").await;
    let t = task(&server, &p, "mine").await;
    let (_, other) = server.create_organization("Other").await;
    let theirs = server.call(Method::POST, "/v1/atlas/projects", Some(&other), Some(json!({"key": "mine", "name": "Theirs"}))).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "keys are unique per organization only");
    let their_project = theirs.data()["id"].as_str().unwrap().to_owned();
    let their_task = server
        .call(Method::POST, &format!("/v1/atlas/projects/{their_project}/tasks"), Some(&other), Some(json!({"title": "theirs"})))
        .await
        .data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/atlas/projects/{p}"), None),
        (Method::PATCH, format!("/v1/atlas/projects/{p}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/v1/atlas/projects/{p}"), None),
        (Method::GET, format!("/v1/atlas/projects/{p}/tasks"), None),
        (Method::POST, format!("/v1/atlas/projects/{p}/tasks"), Some(json!({"title": "x"}))),
        (Method::GET, format!("/v1/atlas/projects/{p}/graph"), None),
        (Method::GET, format!("/v1/atlas/tasks/{t}"), None),
        (Method::PATCH, format!("/v1/atlas/tasks/{t}"), Some(json!({"title": "x"}))),
        (Method::PUT, format!("/v1/atlas/tasks/{t}/status"), Some(json!({"status": "done"}))),
        (Method::DELETE, format!("/v1/atlas/tasks/{t}"), None),
        (Method::GET, format!("/v1/atlas/tasks/{t}/dependencies"), None),
        (Method::POST, format!("/v1/atlas/tasks/{t}/dependencies"), Some(json!({"depends_on_task_id": their_task}))),
        (Method::POST, format!("/v1/atlas/tasks/{their_task}/dependencies"), Some(json!({"depends_on_task_id": t}))),
        (Method::DELETE, format!("/v1/atlas/tasks/{t}/dependencies/{their_task}"), None),
        (Method::GET, format!("/v1/atlas/tasks/{t}/notes"), None),
        (Method::POST, format!("/v1/atlas/tasks/{t}/notes"), Some(json!({"content": "x"}))),
        (Method::GET, format!("/v1/atlas/tasks/{t}/subtasks"), None),
        (Method::POST, "/v1/atlas/tasks".into(), Some(json!({"projectId": p, "title": "x"}))),
        (Method::GET, format!("/v1/atlas/tasks?project_id={p}"), None),
    ];
    for (method, path, body) in attempts {
        let answer = server.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"), "{method} {path}: {:?}", answer.body);
    }
    let mine = get(&server, &format!("/v1/atlas/tasks/{t}")).await;
    assert_eq!((mine.status, &mine.data()["title"]), (StatusCode::OK, &json!("mine")), "nothing changed");
    let listed = server.call(Method::GET, "/v1/atlas/tasks", Some(&other), None).await;
    assert_eq!(strings(&listed.data()["tasks"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect::<Value>()), vec![their_task]);
});

on_both_backends!(the_graph_gives_order_ready_tasks_and_critical_path_after_changes, unlimited(), |server| {
    let p = project(&server, "plan").await;
    let mut ids = Vec::new();
    for name in ["design", "build", "test", "docs", "release"] {
        ids.push(task(&server, &p, name).await);
    }
    let [design, build, test, docs, release] = [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]];
    // release ← test ← build ← design, release ← docs; docs depends on release? no: docs ← design.
    for (t, on) in [(release, test), (test, build), (build, design), (release, docs), (docs, design), (design, docs)] {
        depend(&server, t, on).await;
    }
    // The last one (design depends on docs) was a cycle: refused, so the graph holds five edges.
    let graph = get(&server, &format!("/v1/atlas/projects/{p}/graph")).await;
    assert_eq!(graph.status, StatusCode::OK, "{:?}", graph.body);
    let order = strings(&graph.data()["order"]);
    let position = |id: &str| order.iter().position(|x| x == id).unwrap();
    for (t, on) in [(release, test), (test, build), (build, design), (release, docs), (docs, design)] {
        assert!(position(on) < position(t), "dependencies come first in the order");
    }
    assert_eq!(strings(&graph.data()["ready"]), vec![design.clone()], "only design is ready");
    assert_eq!(strings(&graph.data()["critical_path"]["task_ids"]), vec![design.clone(), build.clone(), test.clone(), release.clone()]);

    status(&server, design, "done").await;
    status(&server, build, "in_progress").await;
    let removed =
        server.call(Method::DELETE, &format!("/v1/atlas/tasks/{release}/dependencies/{docs}"), Some(&server.admin_key), None).await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
    // Now docs goes after release: an out-of-order edge that moves the ranks.
    assert_eq!(depend(&server, docs, release).await.status, StatusCode::CREATED);
    let graph = get(&server, &format!("/v1/atlas/projects/{p}/graph")).await;
    let order = strings(&graph.data()["order"]);
    let position = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(position(release) < position(docs), "docs now follows release");
    assert!(position(test) < position(release) && position(build) < position(test) && position(design) < position(build));
    assert_eq!(strings(&graph.data()["ready"]), vec![build.clone()], "build is ready (design is done); docs waits for release");
    assert_eq!(
        strings(&graph.data()["critical_path"]["task_ids"]),
        vec![build.clone(), test.clone(), release.clone(), docs.clone()],
        "the longest chain of unfinished tasks"
    );
});

/// Limits lifted, and webhooks allowed to reach the test's receiver on loopback.
fn with_receiver() -> Options {
    let mut options = unlimited();
    options.env.insert("ATLAS_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
    options
}

on_both_backends!(subscribers_get_each_change_with_its_version_and_a_project_deletion_deletes_each_task, with_receiver(), |server| {
    let receiver = Receiver::start().await;
    let subscribed = post(&server, "/v1/atlas/webhooks", json!({"url": receiver.url(), "events": ["project.*", "task.*"]})).await;
    assert_eq!(subscribed.status, StatusCode::CREATED, "{:?}", subscribed.body);

    let p = project(&server, "events").await;
    let (a, b) = (task(&server, &p, "a").await, task(&server, &p, "b").await);
    assert_eq!(depend(&server, &b, &a).await.status, StatusCode::CREATED);
    assert_eq!(status(&server, &a, "in_progress").await.status, StatusCode::OK);
    let deleted = server.call(Method::DELETE, &format!("/v1/atlas/projects/{p}"), Some(&server.admin_key), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);

    let got = receiver.wait_for(8, std::time::Duration::from_secs(20)).await;
    let mut events: Vec<(String, String, i64)> = got
        .iter()
        .map(|r| {
            let payload = r.json();
            let id = payload["data"]["id"].as_str().unwrap_or_default().to_owned();
            (payload["type"].as_str().unwrap().to_owned(), id, payload["data"]["version"].as_i64().unwrap_or(-1))
        })
        .collect();
    events.sort();
    let mut expected = vec![
        ("project.created".to_owned(), p.clone(), 1),
        ("project.deleted".to_owned(), p.clone(), 2),
        ("task.created".to_owned(), a.clone(), 1),
        ("task.created".to_owned(), b.clone(), 1),
        ("task.dependency_added".to_owned(), b.clone(), 2),
        ("task.status_changed".to_owned(), a.clone(), 2),
        ("task.deleted".to_owned(), a.clone(), 3),
        ("task.deleted".to_owned(), b.clone(), 3),
    ];
    expected.sort();
    assert_eq!(events, expected, "every change once, with the resource's version after it");
    assert_eq!(get(&server, &format!("/v1/atlas/tasks/{a}")).await.status, StatusCode::NOT_FOUND, "the tasks went with the project");
});
