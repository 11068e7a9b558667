//! nutcracker's ketama continuum (`nc_ketama.c`), point for point.
//!
//! Pure: servers in, sorted points out. Each live server gets
//! `floor(weight / total_weight * 40 * live) * 4` points (computed in `f32`
//! exactly as the C code does, so rounding matches). Point group `i` of a
//! server is the MD5 of `"<name>-<i>"`, cut into four little-endian words.
//! nutcracker formats `"<name>-<i>"` into an 86-byte stack buffer but
//! hashes the untruncated length, so for names of about 80 bytes or more
//! it hashes bytes past the buffer; placement matches for shorter names.
//! Invariants: points are sorted by value, ties keep build order (glibc's
//! merge-sort `qsort` is stable), and a point's `index` is the server's
//! position among *all* servers, live or not.

use crate::hash::md5_digest;

/// nutcracker's `KETAMA_POINTS_PER_SERVER`.
const POINTS_PER_SERVER: f32 = 160.0;
/// Points cut out of one MD5 digest.
const POINTS_PER_HASH: u32 = 4;

/// One point on the continuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub value: u32,
    pub index: u32,
}

/// Input to a build: a server's hashing name, weight and liveness.
#[derive(Debug, Clone, Copy)]
pub struct RingServer<'a> {
    /// The name from `host:port:weight name`, or nutcracker's default.
    pub name: &'a str,
    pub weight: u32,
    /// False while the server is ejected; it then has no points.
    pub live: bool,
}

/// Points for `weight` out of `total` with `live` servers, in the C code's
/// float arithmetic: `floorf(pct * 160 / 4 * live + 1e-10) * 4`, where the
/// sum is done in double and narrowed back to float by `floorf`.
pub fn points_for(weight: u32, total: u32, live: u32) -> u32 {
    let pct = weight as f32 / total as f32;
    let scaled = pct * POINTS_PER_SERVER / 4.0 * live as f32;
    let nudged = (f64::from(scaled) + 0.000_000_000_1) as f32;
    (nudged.floor() as u32) * POINTS_PER_HASH
}

/// Builds the sorted continuum over the live servers, visiting them in
/// `order` (positions in `servers`; nutcracker's name order), which only
/// decides how equal point values tie.
pub fn continuum(servers: &[RingServer<'_>], order: &[usize]) -> Vec<Point> {
    let live: Vec<(u32, &RingServer<'_>)> =
        order.iter().map(|&i| (i as u32, &servers[i])).filter(|(_, s)| s.live).collect();
    let total: u32 = live.iter().map(|(_, s)| s.weight).sum();
    if live.is_empty() || total == 0 {
        return Vec::new();
    }
    let nlive = live.len() as u32;
    let mut points = Vec::with_capacity(live.len() * 160);
    for (index, s) in live {
        let n = points_for(s.weight, total, nlive);
        for group in 0..n / POINTS_PER_HASH {
            let digest = md5_digest(format!("{}-{group}", s.name).as_bytes());
            for x in 0..POINTS_PER_HASH as usize {
                let w = &digest[x * 4..x * 4 + 4];
                points.push(Point { value: u32::from_le_bytes([w[0], w[1], w[2], w[3]]), index });
            }
        }
    }
    points.sort_by_key(|p| p.value);
    points
}

/// `ketama_dispatch`: the first point whose value is >= `hash`, wrapping
/// to the first point past the end. `points` must be non-empty.
pub fn dispatch(points: &[Point], hash: u32) -> u32 {
    let i = points.partition_point(|p| p.value < hash);
    points.get(i).unwrap_or(&points[0]).index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers<'a>(names: &'a [&'a str], weights: &[u32]) -> Vec<RingServer<'a>> {
        names.iter().zip(weights).map(|(&name, &weight)| RingServer { name, weight, live: true }).collect()
    }

    #[test]
    fn equal_weights_give_160_points_each() {
        assert_eq!(points_for(1, 3, 3), 160);
        assert_eq!(points_for(5, 15, 3), 160);
        let c = continuum(&servers(&["a:1", "b:1", "c:1"], &[1, 1, 1]), &[0, 1, 2]);
        assert_eq!(c.len(), 480);
        assert!(c.windows(2).all(|w| w[0].value <= w[1].value));
        for i in 0..3 {
            assert_eq!(c.iter().filter(|p| p.index == i).count(), 160);
        }
    }

    #[test]
    fn weights_scale_points_with_float_rounding() {
        // 1:2:3 over 3 servers: 40*3/6 = 20 -> 80, 160, 240 points.
        assert_eq!([points_for(1, 6, 3), points_for(2, 6, 3), points_for(3, 6, 3)], [80, 160, 240]);
        // 1/3 * 40 * 2 = 26.67 -> floor 26 -> 104 points.
        assert_eq!(points_for(1, 3, 2), 104);
    }

    #[test]
    fn points_come_from_md5_of_name_dash_group() {
        let c = continuum(&servers(&["x"], &[1]), &[0]);
        let d = md5_digest(b"x-0");
        let first = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        assert!(c.iter().any(|p| p.value == first && p.index == 0));
        assert_eq!(c.len(), 160);
    }

    #[test]
    fn dead_servers_get_no_points_but_keep_their_index() {
        let mut s = servers(&["a", "b", "c"], &[1, 1, 1]);
        s[1].live = false;
        let c = continuum(&s, &[0, 1, 2]);
        assert_eq!(c.len(), 320);
        assert!(c.iter().all(|p| p.index != 1));
        assert!(continuum(&[RingServer { name: "a", weight: 1, live: false }], &[0]).is_empty());
    }

    #[test]
    fn dispatch_takes_first_point_at_or_above_and_wraps() {
        let pts = [Point { value: 10, index: 0 }, Point { value: 20, index: 1 }, Point { value: 30, index: 2 }];
        assert_eq!(dispatch(&pts, 0), 0);
        assert_eq!(dispatch(&pts, 10), 0);
        assert_eq!(dispatch(&pts, 11), 1);
        assert_eq!(dispatch(&pts, 30), 2);
        assert_eq!(dispatch(&pts, 31), 0, "past the last point wraps to the first");
    }
}
