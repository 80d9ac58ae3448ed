//! scratch
#[cfg(test)]
mod t {
    #[test]
    fn spans() {
        let src = std::fs::read_to_string("/tmp/sx/probe.yaml").unwrap();
        let lines = dtlint_yaml::LineIndex::new(&src);
        let p = dtlint_yaml::parse(&src, &lines, dtlint_yaml::Limits::default());
        println!("{:?}", p.problems);
        fn walk(n: &dtlint_yaml::Node, src: &str, d: usize) {
            match &n.value {
                dtlint_yaml::Value::Scalar(s) => println!("{}S {:?} {:?} tag={:?} span={:?}", " ".repeat(d), s.text, s.style, s.tag, &src[n.span.range()]),
                dtlint_yaml::Value::Sequence(items) => { println!("{}SEQ span={:?}", " ".repeat(d), &src[n.span.range()]); for i in items { walk(i, src, d+1) } }
                dtlint_yaml::Value::Mapping(es) => { println!("{}MAP span={:?}", " ".repeat(d), &src[n.span.range()]); for e in es { walk(&e.key, src, d+1); walk(&e.value, src, d+2) } }
            }
        }
        for d in &p.documents { walk(&d.root, &src, 0) }
    }
}
