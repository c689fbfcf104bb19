//! No input, however malformed, makes the parser or validator panic.

use ocean_spec::{parse_job_spec, Format, ServiceTreeId};
use proptest::prelude::*;

const FORMATS: [Format; 3] = [Format::Json, Format::Yaml, Format::Auto];

#[test]
fn hand_picked_garbage() {
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\0\0\0".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"[[[[[[[[[[".to_vec(),
        "[".repeat(10_000).into_bytes(),
        "{\"a\":".repeat(10_000).into_bytes(),
        "- ".repeat(10_000).into_bytes(),
        b"a: &a [*a]".to_vec(),
        b"a: &a\n  b: *a\n".to_vec(),
        b"!!binary aGVsbG8=".to_vec(),
        b"id: !tag x".to_vec(),
        b"null".to_vec(),
        b"~".to_vec(),
        b"42".to_vec(),
        b"{\"id\": null}".to_vec(),
        b"{\"id\": 1e999}".to_vec(),
        b"{\"id\":\"cop.a\",\"resources\":{\"cpus\":1e308}}".to_vec(),
        b"id: x\nresources: {cpus: .inf, mem: 18446744073709551616}\n".to_vec(),
        b"id: x\nconstraints: [[a, LIKE, \"(((((((((((((\"]]\n".to_vec(),
        b"id: x\nconstraints: [[a, LIKE, \"a{100000}{100000}\"]]\n".to_vec(),
        b"id: x\nconstraints: [[a, MAX_PER, 99999999999999999999]]\n".to_vec(),
        b"id: x\nconstraints: [[a, IS, -5]]\n".to_vec(),
        b"id: x\nenv: {\"\": \"\"}\nlabels: {\"\": \"\"}\n".to_vec(),
        "id: \u{1F600}_\u{1F600}.\u{1F600}".as_bytes().to_vec(),
        b"id: cop.\xc3\xa9_owt.b".to_vec(),
        b"id: ______".to_vec(),
        b"id: .......".to_vec(),
        b"id: cop._owt._pdl._service._job._cluster.".to_vec(),
        b"---\n---\n".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
    ];
    for input in &inputs {
        for format in FORMATS {
            let _ = parse_job_spec(input, format);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        for format in FORMATS {
            let _ = parse_job_spec(&input, format);
        }
    }

    #[test]
    fn json_ish_text_never_panics(input in r#"[{}\[\]":,a-z0-9_. \n-]{0,200}"#) {
        for format in FORMATS {
            let _ = parse_job_spec(input.as_bytes(), format);
        }
    }

    #[test]
    fn mutated_valid_specs_never_panic(
        cut in 0usize..400,
        byte in any::<u8>(),
    ) {
        let valid = br#"{"id":"cop.a_owt.b_pdl.c_service.d_job.e_cluster.f","cmd":"x","ports":[{"name":"http"}],"constraints":[["hostname","MAX_PER","2"]],"health_checks":[{"protocol":"http","port_name":"http"}]}"#;
        let mut input = valid.to_vec();
        let at = cut % input.len();
        input[at] = byte;
        for format in FORMATS {
            let _ = parse_job_spec(&input, format);
        }
        input.truncate(at);
        for format in FORMATS {
            let _ = parse_job_spec(&input, format);
        }
    }

    #[test]
    fn ids_never_panic_and_valid_ones_round_trip(input in "[a-z_.0-9-]{0,80}") {
        if let Ok(id) = ServiceTreeId::parse(&input) {
            prop_assert_eq!(id.to_string(), input);
        }
    }
}
