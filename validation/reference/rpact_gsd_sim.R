# rpact 3.3.4 simulated operating characteristics with 100,000 iterations (MC se ~ 0.0013
# on a power of 0.8), both conventions of getSimulationMeans' normalApproximation.
# Regenerate with:  Rscript validation/reference/rpact_gsd_sim.R > validation/reference/rpact_gsd_sim.json
suppressMessages(library(rpact))
num <- function(x) paste0("[", paste(formatC(as.numeric(x), digits = 10, format = "g"), collapse = ", "), "]")
out <- c()
add <- function(key, val) out <<- c(out, sprintf('  "%s": %s', key, val))
iter <- 100000
add("iterations", iter)
d <- getDesignGroupSequential(kMax = 3, alpha = 0.025, beta = 0.2, typeOfDesign = "asOF",
                              informationRates = c(0.3333333, 0.6666667, 1))
for (na in c(TRUE, FALSE)) {
  s <- getSimulationMeans(d, alternative = c(0, 0.3), stDev = 1, plannedSubjects = c(119, 237, 356),
                          maxNumberOfIterations = iter, seed = 777, normalApproximation = na)
  tag <- if (na) "means_normalApproximation" else "means_t"
  add(paste0(tag, "_call"), sprintf('"getSimulationMeans(design, alternative = c(0, 0.3), stDev = 1, plannedSubjects = c(119, 237, 356), maxNumberOfIterations = %d, seed = 777, normalApproximation = %s)"', iter, na))
  add(paste0(tag, "_overallReject"), num(s$overallReject))
  add(paste0(tag, "_rejectPerStage_alt0.3"), num(s$rejectPerStage[, 2]))
  add(paste0(tag, "_earlyStop"), num(s$earlyStop))
  add(paste0(tag, "_expectedN"), num(s$expectedNumberOfSubjects))
}
s <- getSimulationSurvival(d, hazardRatio = c(0.7, 1), lambda2 = log(2) / 12, directionUpper = FALSE,
                           accrualTime = c(0, 24), plannedEvents = c(83, 167, 250), maxNumberOfSubjects = 376,
                           maxNumberOfIterations = iter, seed = 777)
add("survival_call", sprintf('"getSimulationSurvival(design, hazardRatio = c(0.7, 1), lambda2 = log(2)/12, directionUpper = FALSE, accrualTime = c(0, 24), plannedEvents = c(83, 167, 250), maxNumberOfSubjects = 376, maxNumberOfIterations = %d, seed = 777)"', iter))
add("survival_overallReject", num(s$overallReject))
add("survival_rejectPerStage_hr0.7", num(s$rejectPerStage[, 1]))
add("survival_earlyStop", num(s$earlyStop))
add("survival_expectedN", num(s$expectedNumberOfSubjects))
add("survival_expectedEvents", num(s$expectedNumberOfEvents))
add("survival_analysisTime_hr0.7", num(s$analysisTime[, 1]))
cat("{\n", paste(out, collapse = ",\n"), "\n}\n", sep = "")
